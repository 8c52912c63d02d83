from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pms_collector import metrics
from pms_collector.backfill import BackfillDeferred, MemoryLedger, SlotBook, backfill_one_day
from pms_collector.gateway import Gateway, GatewayHeartbeat, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.meter import MeterReader, MeterReadError
from pms_collector.meter_clock import MeterClock
from pms_collector.settings import CollectorSettings
from pms_common.health import Health
from pms_common.messages import EnergyReading, Heartbeat
from pms_common.timeutil import JST, SLOT
from tests.collector.test_meter import PROFILE, MeterModelLink
from tests.collector.waiting import eventually
from tests.conftest import free_port

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
    first = asyncio.run(backfill_one_day(book, reader, clock))
    first_day = first.readings
    assert [r.slot_end for r in first_day] == [before + SLOT * i for i in (1, 2, 3)]  # 22:30 .. 23:30
    assert first.meta["contiguous_slot_end"] == (before + 3 * SLOT).isoformat()
    second_day = asyncio.run(backfill_one_day(book, reader, clock)).readings
    assert [r.slot_end for r in second_day] == [datetime(2026, 6, 1, 0, 0, tzinfo=JST) + SLOT * i for i in range(6)]
    assert all(r.backfilled for r in first_day + second_day)
    assert not book.pending and book.contiguous == after


def test_history_that_disagrees_with_a_live_slot_is_refused() -> None:
    _link, reader, clock = _reader_and_clock(NOW)
    ledger = MemoryLedger()
    book = SlotBook(None, None, ledger=ledger)
    asyncio.run(reader.read_scale())
    for live in (_slot(NOW.replace(minute=0) - 4 * SLOT, 1.0, 2.0), _slot(NOW.replace(minute=0))):
        book.accept(live)  # registers the meter never had, read live
        ledger.record(live)
    with pytest.raises(MeterReadError, match="disagree"):
        asyncio.run(backfill_one_day(book, reader, clock))


def test_a_command_range_is_refilled_and_counted() -> None:
    _link, reader, clock = _reader_and_clock(NOW)
    book = SlotBook(NOW.replace(minute=0), NOW.replace(minute=0))
    assert book.request(NOW - timedelta(hours=2), NOW) == 4
    readings = asyncio.run(backfill_one_day(book, reader, clock)).readings
    assert len(readings) == 4 and not book.pending


def test_a_command_range_sends_again_what_was_stored_as_it_was() -> None:
    """A gap never re-sends a stored slot; a range an operator asks for (to repair a store) does,
    with the value that was stored: the live one where the slot was read live."""
    _link, reader, clock = _reader_and_clock(NOW)
    asyncio.run(reader.read_scale())
    ledger = MemoryLedger()
    newest = NOW.replace(minute=0)
    book = SlotBook(newest, newest, ledger=ledger)
    plain = SlotBook(newest, newest)
    plain.request(newest - 4 * SLOT, newest)
    history = {r.slot_end: r for r in asyncio.run(backfill_one_day(plain, reader, clock)).readings}
    live = history[newest - SLOT].model_copy(update={"backfilled": False})
    ledger.record(live)
    ledger.record(history[newest - 2 * SLOT])
    assert book.request(newest - 4 * SLOT, newest) == 4
    sent = {r.slot_end: r for r in asyncio.run(backfill_one_day(book, reader, clock)).readings}
    assert sorted(sent) == [newest - 3 * SLOT, newest - 2 * SLOT, newest - SLOT, newest]
    assert sent[newest - SLOT] == live.model_copy(update={"register_wrap_kwh": sent[newest - SLOT].register_wrap_kwh})
    assert sent[newest - 2 * SLOT].backfilled and not sent[newest - SLOT].backfilled


def test_near_the_meters_midnight_the_day_is_not_guessed() -> None:
    midnight = datetime(2026, 6, 1, 0, 0, 30, tzinfo=JST)
    _link, reader, clock = _reader_and_clock(midnight)
    book = SlotBook(None, None)
    book.request(midnight - timedelta(hours=3), midnight - timedelta(hours=1))
    with pytest.raises(BackfillDeferred, match="midnight") as deferred:
        asyncio.run(backfill_one_day(book, reader, clock))
    assert deferred.value.resume_at == datetime(2026, 6, 1, 0, 2, tzinfo=JST)  # midnight + the 2-minute margin
    assert book.pending  # nothing was given up


def _energy_in_outbox(path: Path) -> list[dict[str, object]]:
    with sqlite3.connect(path) as db:
        batches = [row[0] for row in db.execute("SELECT readings FROM batches ORDER BY seq")]
    return [r for batch in batches for r in json.loads(batch) if r["kind"] == "energy"]


def test_after_a_restart_the_history_is_still_checked_and_no_slot_is_sent_twice(tmp_path: Path) -> None:
    """Run 1 stores 09:00 live. Run 2 (a restart at 10:30) finds a gap after 09:00 in a meter day whose
    history reads a step above what was published live: the live values stand, the disagreement is
    counted and reported, the gap is filled, and no slot (10:30 included) is sent twice."""
    run = uuid.uuid4().hex[:8]
    settings = CollectorSettings(link="sim", gateway_id=f"gw-restart-{run}", mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
                                 mqtt_client_id=f"c-{run}", outbox_path=tmp_path / "outbox.db", power_interval_s=1,
                                 slot_fallback_s=1, read_timeout_s=3, backfill_days=0, backfill_retry_s=0.3)
    nine = datetime(2026, 6, 1, 9, 0, tzinfo=JST)
    conflicts_before = metrics.HISTORY_CONFLICTS._value.get() if hasattr(metrics, "HISTORY_CONFLICTS") else 0.0

    heartbeats: list[Heartbeat] = []

    async def run_until(gateway: Gateway, done: Callable[[], bool], what: str) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        try:
            await eventually(done, 40, what)
            heartbeats.append(GatewayHeartbeat(
                gateway_id=settings.gateway_id, firmware="test", link=gateway.link, read_loop=gateway.read_loop,
                outbox=gateway.outbox, slots=gateway.slots, config=gateway.config, started=0.0)())
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    first = build_gateway(settings, SimulatedModuleLink(settings, start=nine + timedelta(seconds=20), speed=60),
                          Health())
    asyncio.run(run_until(first, lambda: first.slots.latest == nine and not first.slots.pending, "run 1: 09:00 live"))

    link = SimulatedModuleLink(settings, start=nine + 3 * SLOT + timedelta(seconds=20), speed=60)
    # The meter's history of 09:00 now reads a step above what it pushed live, and run 1 published.
    link.simulator.module.meter.misstate_history(nine, nine)
    second = build_gateway(settings, link, Health())
    asyncio.run(run_until(second, lambda: (second.slots.latest or nine) >= nine + 3 * SLOT
                          and not second.slots.pending, "run 2: the gap after 09:00 refilled"))

    energy = _energy_in_outbox(settings.resolved_outbox_path())
    sent = [str(r["slot_end"]) for r in energy]
    assert len(sent) == len(set(sent)), f"slots sent twice: {sorted(s for s in sent if sent.count(s) > 1)}"
    live = {datetime.fromisoformat(str(r["slot_end"])) for r in energy if not r["backfilled"]}
    assert {nine, nine + 3 * SLOT} <= live  # 09:00 from run 1, 10:30 from run 2: both stand
    backfilled = {datetime.fromisoformat(str(r["slot_end"])) for r in energy if r["backfilled"]}
    assert {nine + SLOT, nine + 2 * SLOT} <= backfilled  # the gap is filled all the same
    assert metrics.HISTORY_CONFLICTS._value.get() > conflicts_before
    status = heartbeats[-1].backfill
    assert status is not None and status.conflicts_total >= 1
    assert status.last_conflict is not None and "09:00" in status.last_conflict


def test_a_first_start_reads_the_meters_history_back_as_far_as_asked(tmp_path: Path) -> None:
    """A new gateway at 03:10 (night in Japan) stores its meter's last 8 days at once, newest day
    first, while it reads power on: not only today's few slots."""
    run = uuid.uuid4().hex[:8]
    settings = CollectorSettings(link="sim", gateway_id=f"gw-first-{run}", mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
                                 mqtt_client_id=f"c-{run}", outbox_path=tmp_path / "outbox.db", power_interval_s=1,
                                 slot_fallback_s=1, read_timeout_s=3, backfill_days=8)
    gateway = build_gateway(settings, SimulatedModuleLink(settings, start=NOW, speed=60), Health())

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        try:
            await eventually(lambda: gateway.slots.latest is not None and not gateway.slots.pending, 40,
                             "the history read")
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    asyncio.run(main())
    energy = _energy_in_outbox(settings.resolved_outbox_path())
    slots = sorted(datetime.fromisoformat(str(r["slot_end"])) for r in energy)
    first = datetime(2026, 5, 24, 0, 0, tzinfo=JST)  # 8 days before the meter's June 1
    assert slots[0] == first
    assert slots == [first + SLOT * i for i in range(len(slots))], "every slot once, none missing"
    assert len(slots) >= 8 * 48
    with sqlite3.connect(settings.resolved_outbox_path()) as db:
        assert db.execute("SELECT count(*) FROM batches WHERE has_energy = 0").fetchone()[0] > 0  # power went on
