"""Which slots the outbox holds, and refilling the missing ones from the meter's E2/E4 history.

Two watermarks live in the outbox file (so they survive a restart or a power cut, in the same
transaction as the readings): `latest` is the newest slot stored, `contiguous` the newest slot up
to which every slot is stored. A slot that arrives past `contiguous + 30 min` opens a gap; the gap
is refilled one meter day at a time (E5 = days back, then E2/E4) and the refilled slots are marked
`backfilled`. Ranges asked for by a command are refilled the same way. A meter that refuses its
history (Get_SNA for E2/E4, SetC_SNA for E5) is asked once: from then on its gaps are counted
lost and skipped, and the live reads go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from echonet import smart_meter as sm
from pms_collector import metrics
from pms_collector.meter import MeterReader, MeterReadError, MeterRefused
from pms_collector.meter_clock import MeterClock
from pms_common import timeutil
from pms_common.messages import EnergyReading

log = logging.getLogger(__name__)
SLOT = timeutil.SLOT
# E2/E4 name no day, only "N days back": near the meter's midnight the day could be misread.
_MIDNIGHT_MARGIN = timedelta(minutes=2)


@dataclass
class Range:
    """Slots ending in (after, until]."""

    after: datetime
    until: datetime


class BackfillDeferred(Exception):
    """Not an error: the history cannot be read safely until `resume_at` (meter time)."""

    def __init__(self, resume_at: datetime) -> None:
        super().__init__(f"too close to the meter's midnight to tell which day E2 serves; "
                         f"backfill resumes at {resume_at.isoformat()}")
        self.resume_at = resume_at


class SlotBook:
    def __init__(self, latest: datetime | None, contiguous: datetime | None) -> None:
        self.latest = latest
        self.contiguous = contiguous
        self.requested: list[Range] = []
        # Slots stored live (from the meter's push or Get), kept to check the history against them.
        self.known: dict[datetime, tuple[float | None, float | None]] = {}
        # Why the meter's history is not asked for any more (it refused it), or None.
        self.history_refused: str | None = None

    @staticmethod
    def _parse(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text).astimezone(timeutil.JST)

    @classmethod
    def load(cls, latest: str | None, contiguous: str | None) -> SlotBook:
        return cls(cls._parse(latest), cls._parse(contiguous))

    def accept(self, reading: EnergyReading) -> dict[str, str] | None:
        """The watermark updates to store with a live slot reading, or None if it is old news."""
        slot = reading.slot_end
        if self.latest is not None and slot <= self.latest:
            return None
        self.known[slot] = (reading.forward_kwh, reading.reverse_kwh)
        for old in [s for s in self.known if s < slot - timedelta(days=2)]:
            del self.known[old]
        if self.contiguous is None:
            # A new gateway (or a new outbox) starts its record at the meter's midnight, so its first
            # day is whole: the slots from 00:00 on are refilled from E2/E4 like any other gap.
            self.contiguous = timeutil.day_start(slot.astimezone(timeutil.JST).date()) - SLOT
        if slot == self.contiguous + SLOT:
            self.contiguous = slot
        if slot > self.contiguous + SLOT:
            log.info("slots after %s are missing up to %s: backfill", self.contiguous.isoformat(), slot.isoformat())
        self.latest = slot
        return self.meta()

    def meta(self) -> dict[str, str]:
        values = {}
        if self.latest is not None:
            values["latest_slot_end"] = self.latest.isoformat()
        if self.contiguous is not None:
            values["contiguous_slot_end"] = self.contiguous.isoformat()
        return values

    def request(self, after: datetime, until: datetime) -> int:
        """Queue a refill of (after, until]; returns how many slots that is."""
        after, until = timeutil.slot_end_at_or_before(after), timeutil.slot_end_at_or_before(until)
        if until <= after:
            return 0
        self.requested.append(Range(after, until))
        return int((until - after) / SLOT)

    def next_range(self) -> Range | None:
        if self.requested:
            return self.requested[0]
        if self.contiguous is not None and self.latest is not None and self.contiguous < self.latest:
            return Range(self.contiguous, self.latest)
        return None

    @property
    def pending(self) -> bool:
        return self.next_range() is not None


async def backfill_one_day(book: SlotBook, reader: MeterReader, clock: MeterClock,
                           ) -> tuple[list[EnergyReading], dict[str, str]]:
    """Read the meter day holding the first missing slot: its readings and the new watermarks."""
    target = book.next_range()
    assert target is not None
    meter_now = clock.now()
    first = target.after + SLOT
    day = first.astimezone(timeutil.JST).date()
    meter_today = meter_now.date()
    midnight = timeutil.day_start(meter_today)
    # A second of real time is a long while on a sped-up simulated meter.
    margin = max(_MIDNIGHT_MARGIN, timedelta(seconds=clock.rate))
    for boundary in (midnight, midnight + timedelta(days=1)):
        if abs(meter_now - boundary) < margin:
            raise BackfillDeferred(boundary + margin)
    days_back = (meter_today - day).days
    day_end = timeutil.day_start(day) + timedelta(days=1) - SLOT  # the last register E2 holds for the day
    if days_back > sm.HISTORY_MAX_DAY:
        # The meter no longer holds that day: those slots are lost, and counted.
        oldest = timeutil.day_start(meter_today - timedelta(days=sm.HISTORY_MAX_DAY)) - SLOT
        lost = int((min(oldest, target.until) - target.after) / SLOT)
        metrics.SLOTS_UNRECOVERABLE.inc(max(0, lost))
        return [], _advance(book, target, min(oldest, target.until))
    if days_back < 0:
        raise MeterReadError(f"slot {first.isoformat()} is after the meter's today {meter_today}")
    if book.history_refused is not None:
        return [], _give_up(book, target)
    if reader.scale is None:
        await reader.read_scale()
    try:
        history = await reader.read_day(days_back, meter_today)
    except MeterRefused as exc:
        book.history_refused = str(exc)
        metrics.HISTORY_REFUSED.set(1)
        log.warning("the meter refuses its E2/E4 history (%s): missing slots are counted lost and no longer "
                    "asked for; power and live slots go on", exc)
        return [], _give_up(book, target)
    readings: list[EnergyReading] = []
    end = min(day_end, target.until)
    for slot_end, raw in history.registers.items():
        if slot_end <= target.after or slot_end > end:
            continue
        reading = reader.energy_at(slot_end, raw)
        if reading is None:
            metrics.SLOTS_UNRECOVERABLE.inc()
            continue
        readings.append(reading)
    _check_against_known(book, reader, history.registers)
    metrics.SLOTS_BACKFILLED.inc(len(readings))
    return readings, _advance(book, target, end)


def _check_against_known(book: SlotBook, reader: MeterReader,
                         registers: dict[datetime, tuple[int | None, int | None]]) -> None:
    """A slot stored live must show the same registers in the history, or the day was misread."""
    for slot_end, raw in registers.items():
        live = book.known.get(slot_end)
        history = reader.energy_at(slot_end, raw)
        if live is None or history is None:
            continue
        if (history.forward_kwh, history.reverse_kwh) != live:
            raise MeterReadError(f"E2/E4 disagree with the live registers at {slot_end.isoformat()}; retrying")


def _give_up(book: SlotBook, target: Range) -> dict[str, str]:
    """The slots of `target` cannot be refilled: count them lost and move past them."""
    requested = bool(book.requested) and book.requested[0] is target
    # A gap ends at the newest slot, which is stored; a requested range may end anywhere.
    lost = int((target.until - target.after) / SLOT) - (0 if requested else 1)
    metrics.SLOTS_UNRECOVERABLE.inc(max(0, lost))
    return _advance(book, target, target.until)


def _advance(book: SlotBook, target: Range, through: datetime) -> dict[str, str]:
    if through >= target.until:
        if book.requested and book.requested[0] is target:
            book.requested.pop(0)
        else:
            book.contiguous = max(book.contiguous or through, through)
    else:
        target.after = through
        if not (book.requested and book.requested[0] is target):
            book.contiguous = through
    return book.meta()
