from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from pms_collector.backfill import BackfillDeferred, SlotBook, backfill_one_day
from pms_collector.meter import MeterReader, MeterReadError
from pms_collector.meter_clock import MeterClock
from pms_common.messages import EnergyReading
from pms_common.timeutil import JST, SLOT
from tests.collector.test_meter import PROFILE, MeterModelLink

NOW = datetime(2026, 6, 1, 3, 10, tzinfo=JST)


def _slot(slot_end: datetime, forward: float = 1.0, reverse: float = 2.0) -> EnergyReading:
    return EnergyReading(slot_end=slot_end, forward_kwh=forward, reverse_kwh=reverse, register_wrap_kwh=1e5)


def test_contiguous_slots_move_both_watermarks() -> None:
    midnight = datetime(2026, 6, 1, 0, 0, tzinfo=JST)
    book = SlotBook(None, None)
    assert book.accept(_slot(midnight)) == {"latest_slot_end": midnight.isoformat(),
                                            "contiguous_slot_end": midnight.isoformat()}
    book.accept(_slot(midnight + SLOT))
    assert book.contiguous == book.latest == midnight + SLOT
    assert book.accept(_slot(midnight)) is None  # old news: a push after the Get of the same slot
    assert not book.pending


def test_a_new_outbox_refills_the_meters_day_from_midnight() -> None:
    book = SlotBook(None, None)
    book.accept(_slot(NOW.replace(minute=0)))
    target = book.next_range()
    assert target is not None
    assert (target.after, target.until) == (datetime(2026, 5, 31, 23, 30, tzinfo=JST), NOW.replace(minute=0))


def test_a_gap_opens_a_backfill_range_that_survives_a_restart() -> None:
    first = NOW.replace(minute=0) - timedelta(days=1)
    book = SlotBook(first - SLOT, first - SLOT)
    book.accept(_slot(first))
    meta = book.accept(_slot(first + 5 * SLOT))
    assert meta is not None
    again = SlotBook.load(meta["latest_slot_end"], meta["contiguous_slot_end"])
    target = again.next_range()
    assert target is not None and (target.after, target.until) == (first, first + 5 * SLOT)


def _reader_and_clock(at: datetime) -> tuple[MeterModelLink, MeterReader, MeterClock]:
    link = MeterModelLink(lambda: at, PROFILE)
    clock = MeterClock(lambda: 0.0)
    clock.anchor(at, 0.0, exact=True)
    return link, MeterReader(link, timeout_s=1.0), clock


def test_backfill_fills_a_gap_across_midnight_one_day_at_a_time() -> None:
    link, reader, clock = _reader_and_clock(NOW)
    before = datetime(2026, 5, 31, 22, 0, tzinfo=JST)
    book = SlotBook(before - SLOT, before - SLOT)
    after = datetime(2026, 6, 1, 2, 30, tzinfo=JST)
    scale = asyncio.run(reader.read_scale())
    for slot_end in (before, after):
        forward, reverse = link.meter.registers_kwh_at_slot(slot_end)
        book.accept(_slot(slot_end, scale.kwh(int(forward / 0.1 + 1e-9)), scale.kwh(int(reverse / 0.1 + 1e-9))))
    first_day, meta = asyncio.run(backfill_one_day(book, reader, clock))
    assert [r.slot_end for r in first_day] == [before + SLOT * i for i in (1, 2, 3)]  # 22:30 .. 23:30
    assert meta["contiguous_slot_end"] == (before + 3 * SLOT).isoformat()
    second_day, meta = asyncio.run(backfill_one_day(book, reader, clock))
    assert [r.slot_end for r in second_day] == [datetime(2026, 6, 1, 0, 0, tzinfo=JST) + SLOT * i for i in range(6)]
    assert all(r.backfilled for r in first_day + second_day)
    assert not book.pending and book.contiguous == after


def test_history_that_disagrees_with_a_live_slot_is_refused() -> None:
    _link, reader, clock = _reader_and_clock(NOW)
    book = SlotBook(None, None)
    asyncio.run(reader.read_scale())
    book.accept(_slot(NOW.replace(minute=0) - 4 * SLOT, 1.0, 2.0))  # registers the meter never had
    book.accept(_slot(NOW.replace(minute=0)))
    with pytest.raises(MeterReadError, match="disagree"):
        asyncio.run(backfill_one_day(book, reader, clock))


def test_a_command_range_is_refilled_and_counted() -> None:
    _link, reader, clock = _reader_and_clock(NOW)
    book = SlotBook(NOW.replace(minute=0), NOW.replace(minute=0))
    assert book.request(NOW - timedelta(hours=2), NOW) == 4
    readings, _meta = asyncio.run(backfill_one_day(book, reader, clock))
    assert len(readings) == 4 and not book.pending


def test_near_the_meters_midnight_the_day_is_not_guessed() -> None:
    midnight = datetime(2026, 6, 1, 0, 0, 30, tzinfo=JST)
    _link, reader, clock = _reader_and_clock(midnight)
    book = SlotBook(None, None)
    book.request(midnight - timedelta(hours=3), midnight - timedelta(hours=1))
    with pytest.raises(BackfillDeferred, match="midnight") as deferred:
        asyncio.run(backfill_one_day(book, reader, clock))
    assert deferred.value.resume_at == datetime(2026, 6, 1, 0, 2, tzinfo=JST)  # midnight + the 2-minute margin
    assert book.pending  # nothing was given up
