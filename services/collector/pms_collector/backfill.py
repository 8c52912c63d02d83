"""Which slots the outbox holds, and refilling the missing ones from the meter's E2/E4 history.

Two watermarks live in the outbox file (so they survive a restart or a power cut, in the same
transaction as the readings): `latest` is the newest slot stored, `contiguous` the newest slot up
to which every slot is stored. A slot that arrives past `contiguous + 30 min` opens a gap; the gap
is refilled one meter day at a time (E5 = days back, then E2/E4) and the refilled slots are marked
`backfilled`. Ranges asked for by a command are refilled the same way. A meter that refuses its
history (Get_SNA for E2/E4, SetC_SNA for E5) is asked once: from then on its gaps are counted
lost and skipped, and the live reads go on.

On its first start a gateway also reads the meter's history back from the day before its first
slot, newest day first, as far as `history_days` asks (the meter keeps 99 days): a new plant shows
its past months at once. Gaps and commands go before that walk back, so recent slots come first.

The outbox also keeps a ledger of every slot it has stored (its registers and whether they were
read live), so that after a restart the history is still checked against what was published live,
and a slot already stored is never sent again from the history. Where the history disagrees with a
slot read live, the live value stands: the disagreement is counted and reported (`HistoryConflict`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal, Protocol

from echonet import smart_meter as sm
from echonet.frame import ESV
from pms_collector import metrics
from pms_collector.meter import MeterReader, MeterReadError, MeterRefused
from pms_collector.meter_clock import MeterClock
from pms_common import timeutil
from pms_common.messages import EnergyReading

log = logging.getLogger(__name__)
SLOT = timeutil.SLOT
DAY = timedelta(days=1)
# E2/E4 name no day, only "N days back": near the meter's midnight the day could be misread.
_MIDNIGHT_MARGIN = timedelta(minutes=2)
# Watermark keys in the outbox's meta table.
LATEST, CONTIGUOUS = "latest_slot_end", "contiguous_slot_end"
HISTORY_FLOOR, HISTORY_TARGET = "history_floor_slot_end", "history_target_slot_end"


@dataclass(frozen=True)
class StoredSlot:
    """A slot the outbox has stored: its registers, and whether they were read live (EA/EB)."""

    forward_kwh: float | None
    reverse_kwh: float | None
    live: bool


class SlotLedger(Protocol):
    def stored_slots(self, after: datetime, until: datetime) -> dict[datetime, StoredSlot]:
        """The slots ending in (after, until] that are stored."""
        ...


class MemoryLedger:
    """A ledger in memory, for a slot book without an outbox behind it."""

    def __init__(self) -> None:
        self.slots: dict[datetime, StoredSlot] = {}

    def record(self, reading: EnergyReading) -> None:
        self.slots[reading.slot_end] = StoredSlot(reading.forward_kwh, reading.reverse_kwh, not reading.backfilled)

    def stored_slots(self, after: datetime, until: datetime) -> dict[datetime, StoredSlot]:
        return {slot: stored for slot, stored in self.slots.items() if after < slot <= until}


@dataclass
class Range:
    """Slots ending in (after, until]: asked for by a command, a gap, or the first start's history."""

    after: datetime
    until: datetime
    kind: Literal["requested", "gap", "history"] = "requested"


class BackfillDeferred(Exception):
    """Not an error: the history cannot be read safely until `resume_at` (meter time)."""

    def __init__(self, resume_at: datetime) -> None:
        super().__init__(f"too close to the meter's midnight to tell which day E2 serves; "
                         f"backfill resumes at {resume_at.isoformat()}")
        self.resume_at = resume_at


class HistoryConflict(MeterReadError):
    """The meter's E2/E4 history of a day disagrees with slots stored live on that day."""

    def __init__(self, day: date, conflicts: list[tuple[EnergyReading, StoredSlot]]) -> None:
        first, live = conflicts[0]
        super().__init__(
            f"E2/E4 of {day} disagree with the registers read live at {len(conflicts)} slot(s), first at "
            f"{first.slot_end.strftime('%H:%M')}: live {_kwh(live.forward_kwh)}/{_kwh(live.reverse_kwh)} kWh, "
            f"history {_kwh(first.forward_kwh)}/{_kwh(first.reverse_kwh)} kWh")
        self.day = day
        self.conflicts = conflicts


def _kwh(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


class SlotBook:
    def __init__(self, latest: datetime | None, contiguous: datetime | None, *, ledger: SlotLedger | None = None,
                 history_days: int = 0, history_floor: datetime | None = None,
                 history_target: datetime | None = None) -> None:
        self.latest = latest
        self.contiguous = contiguous
        self.requested: list[Range] = []
        self.ledger: SlotLedger = ledger if ledger is not None else MemoryLedger()
        self.history_days = history_days  # how far back a first start reads the meter's history
        # The first start's walk back: slots up to `history_floor` are still to read, down to `history_target`.
        self.history_floor = history_floor
        self.history_target = history_target
        # Why the meter's history is not asked for any more (it refused it), or None.
        self.history_refused: str | None = None

    @staticmethod
    def _parse(text: str | None) -> datetime | None:
        return None if text is None else datetime.fromisoformat(text).astimezone(timeutil.JST)

    @classmethod
    def load(cls, latest: str | None, contiguous: str | None, *, ledger: SlotLedger | None = None,
             history_days: int = 0, history_floor: str | None = None, history_target: str | None = None) -> SlotBook:
        return cls(cls._parse(latest), cls._parse(contiguous), ledger=ledger, history_days=history_days,
                   history_floor=cls._parse(history_floor), history_target=cls._parse(history_target))

    def accept(self, reading: EnergyReading) -> dict[str, str] | None:
        """The watermark updates to store with a live slot reading, or None if it is old news."""
        slot = reading.slot_end
        if self.latest is not None and slot <= self.latest:
            return None
        if self.contiguous is None:
            # A new gateway (or a new outbox) starts its record at the meter's midnight, so its first
            # day is whole: the slots from 00:00 on are refilled from E2/E4 like any other gap. The
            # days before are its history, read back as far as `history_days` asks.
            midnight = timeutil.day_start(slot.astimezone(timeutil.JST).date())
            self.contiguous = midnight - SLOT
            if self.history_days:
                self.history_floor = midnight - SLOT
                self.history_target = midnight - self.history_days * DAY - SLOT
        if slot == self.contiguous + SLOT:
            self.contiguous = slot
        if slot > self.contiguous + SLOT:
            log.info("slots after %s are missing up to %s: backfill", self.contiguous.isoformat(), slot.isoformat())
        self.latest = slot
        return self.meta()

    def meta(self) -> dict[str, str]:
        values = {}
        for key, value in ((LATEST, self.latest), (CONTIGUOUS, self.contiguous), (HISTORY_FLOOR, self.history_floor),
                           (HISTORY_TARGET, self.history_target)):
            if value is not None:
                values[key] = value.isoformat()
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
            return Range(self.contiguous, self.latest, "gap")
        floor, target = self.history_floor, self.history_target
        if floor is not None and target is not None and floor > target:
            # One meter day back: E2 of day D holds the slots ending D 00:00 to D 23:30.
            day = floor.astimezone(timeutil.JST).date()
            return Range(max(target, timeutil.day_start(day) - SLOT), floor, "history")
        return None

    @property
    def pending(self) -> bool:
        return self.next_range() is not None

    def pending_days(self) -> int:
        """How many meter days the backfill still has to read (an estimate for the heartbeat)."""
        ranges = [*self.requested]
        if self.contiguous is not None and self.latest is not None and self.contiguous < self.latest:
            ranges.append(Range(self.contiguous, self.latest, "gap"))
        if self.history_floor is not None and self.history_target is not None:
            ranges.append(Range(self.history_target, self.history_floor, "history"))
        days: set[date] = set()
        for item in ranges:
            if item.until > item.after:
                first = (item.after + SLOT).astimezone(timeutil.JST).date()
                last = item.until.astimezone(timeutil.JST).date()
                days.update(first + timedelta(days=n) for n in range((last - first).days + 1))
        return len(days)


@dataclass
class DayBackfill:
    """What one meter day of history gave: slots to store, new watermarks, and disagreements let stand."""

    readings: list[EnergyReading]
    meta: dict[str, str]
    conflicts: list[tuple[EnergyReading, StoredSlot]] = field(default_factory=list)


async def backfill_one_day(book: SlotBook, reader: MeterReader, clock: MeterClock, *,
                           accept_conflicts: bool = False) -> DayBackfill:
    """Read the meter day holding the first missing slot: its readings and the new watermarks.

    Where the day's history disagrees with a slot stored live, `HistoryConflict` is raised (the day
    may have been misread: it is tried again), unless `accept_conflicts`: then the live values stand,
    the other slots of the day are stored, and the disagreements are returned to be reported.
    """
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
        oldest = timeutil.day_start(meter_today - timedelta(days=sm.HISTORY_MAX_DAY)) - SLOT
        if target.kind == "history":  # the walk back has reached the end of the meter's history
            return DayBackfill([], _advance(book, target, target.until, history_ends=True))
        # The meter no longer holds that day: those slots are lost, and counted.
        lost = int((min(oldest, target.until) - target.after) / SLOT)
        metrics.SLOTS_UNRECOVERABLE.inc(max(0, lost))
        return DayBackfill([], _advance(book, target, min(oldest, target.until)))
    if days_back < 0:
        raise MeterReadError(f"slot {first.isoformat()} is after the meter's today {meter_today}")
    if book.history_refused is not None:
        return DayBackfill([], _give_up(book, target))
    if reader.scale is None:
        await reader.read_scale()
    try:
        history = await reader.read_day(days_back, meter_today)
    except MeterRefused as exc:
        if exc.request != ESV.GET:
            # A refused E5 day Set may pass (a busy meter): the backfill tries again on its backoff.
            raise
        # Get_SNA for E2/E4: this meter keeps no history, asking again will not help.
        book.history_refused = str(exc)
        metrics.HISTORY_REFUSED.set(1)
        log.warning("the meter refuses its E2/E4 history (%s): missing slots are counted lost and no longer "
                    "asked for; power and live slots go on", exc)
        return DayBackfill([], _give_up(book, target))
    day_slots = sorted(history.registers)
    stored = book.ledger.stored_slots(day_slots[0] - SLOT, day_slots[-1]) if day_slots else {}
    conflicts: list[tuple[EnergyReading, StoredSlot]] = []
    readings: list[EnergyReading] = []
    end = min(day_end, target.until)
    absent = 0
    for slot_end in day_slots:
        reading = reader.energy_at(slot_end, history.registers[slot_end])
        known = stored.get(slot_end)
        if reading is not None and known is not None and known.live and _disagree(reading, known):
            conflicts.append((reading, known))
        if slot_end <= target.after or slot_end > end:
            continue
        if known is not None:
            if target.kind == "requested" and reader.scale is not None:
                # An operator asked for the range again (to repair a store): what was stored goes
                # again as it was, the live value where there was one.
                readings.append(EnergyReading(slot_end=slot_end, forward_kwh=known.forward_kwh,
                                              reverse_kwh=known.reverse_kwh, backfilled=not known.live,
                                              register_wrap_kwh=reader.scale.wrap_kwh))
            continue  # a gap or the history walk: a slot already stored is never sent twice
        if reading is None:
            absent += 1
            continue
        readings.append(reading)
    if conflicts and not accept_conflicts:
        raise HistoryConflict(day, conflicts)
    if target.kind == "history":
        # Before the gateway's first slot, a slot with no data predates the meter's history: not lost.
        metrics.SLOTS_BEFORE_HISTORY.inc(absent)
        if not readings and all(reader.energy_at(s, r) is None for s, r in history.registers.items()):
            log.info("the meter's history holds nothing on %s: the history before it is not read", day)
            return DayBackfill([], _advance(book, target, target.until, history_ends=True))
    else:
        metrics.SLOTS_UNRECOVERABLE.inc(absent)
    metrics.SLOTS_BACKFILLED.inc(len(readings))
    return DayBackfill(readings, _advance(book, target, end), conflicts)


def _disagree(history: EnergyReading, live: StoredSlot) -> bool:
    return any(a is not None and b is not None and abs(a - b) > 1e-9
               for a, b in ((history.forward_kwh, live.forward_kwh), (history.reverse_kwh, live.reverse_kwh)))


def _give_up(book: SlotBook, target: Range) -> dict[str, str]:
    """The slots of `target` cannot be refilled (the meter refuses its history): count them lost and
    move past them. A first start's walk back simply ends there: those slots were never the gateway's."""
    if target.kind == "history":
        return _advance(book, target, target.until, history_ends=True)
    requested = bool(book.requested) and book.requested[0] is target
    # A gap ends at the newest slot, which is stored; a requested range may end anywhere.
    lost = int((target.until - target.after) / SLOT) - (0 if requested else 1)
    metrics.SLOTS_UNRECOVERABLE.inc(max(0, lost))
    return _advance(book, target, target.until)


def _advance(book: SlotBook, target: Range, through: datetime, *, history_ends: bool = False) -> dict[str, str]:
    if target.kind == "history":
        book.history_floor = book.history_target if history_ends else target.after
    elif through >= target.until:
        if book.requested and book.requested[0] is target:
            book.requested.pop(0)
        else:
            book.contiguous = max(book.contiguous or through, through)
    else:
        target.after = through
        if target.kind == "gap":
            book.contiguous = through
    return book.meta()


class BackfillRetry:
    """The backfill's own backoff, and what the heartbeat says of it: live reads never wait for it."""

    def __init__(self, first_delay_s: float, *, max_factor: int = 20) -> None:
        self.first_delay_s = first_delay_s
        self.max_delay_s = first_delay_s * max_factor
        self.failures_total = 0
        self.consecutive = 0
        self.last_failure: str | None = None
        self.last_failure_at: datetime | None = None  # gateway time
        self.retry_at: float | None = None  # monotonic
        self.conflicts_total = 0
        self.last_conflict: str | None = None
        self._conflict_tries: tuple[date, int] | None = None

    def due(self, now: float) -> bool:
        return self.retry_at is None or now >= self.retry_at

    def failed(self, reason: str, now: float) -> float:
        """Note a failed attempt; returns the wait before the next one."""
        self.failures_total += 1
        self.consecutive += 1
        self.last_failure = reason
        self.last_failure_at = timeutil.now_jst()
        delay: float = min(self.max_delay_s, self.first_delay_s * 2.0 ** min(self.consecutive - 1, 30))
        self.retry_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.consecutive = 0
        self.retry_at = None

    def accept_conflicts(self, day: date) -> bool:
        """Whether the history of `day` is taken despite disagreeing with live slots: only after it
        disagreed the same way on `CONFLICT_TRIES` reads (a misread day would not do that)."""
        return self._conflict_tries is not None and self._conflict_tries == (day, CONFLICT_TRIES)

    def conflict_seen(self, day: date) -> None:
        tries = self._conflict_tries[1] if self._conflict_tries and self._conflict_tries[0] == day else 0
        self._conflict_tries = (day, tries + 1)

    def conflicts_reported(self, conflict: HistoryConflict) -> None:
        self.conflicts_total += len(conflict.conflicts)
        self.last_conflict = str(conflict)
        self._conflict_tries = None


# Reads of a day whose history disagrees with the live slots, before the disagreement is taken as the meter's.
CONFLICT_TRIES = 3
