"""The read loop: it fills the outbox; the uplink (uplink.py) empties it on acks.

What is read when (slots carry the meter's own times, see meter_clock.py; power the gateway's):
- at start, after every (re)join and every meter check interval: D3/E1/D7 (the register scale,
  refused when impossible: energy then waits for a valid one, power goes on) and the meter's clock
  (judged against the gateway's);
- every power interval: E7 + E8;
- every slot end: EA/EB from the meter's INF push, or by Get when no push came in time;
- every energy interval: E0/E3 (a gauge: the registers between slot ends);
- after any gap, and on a first start back through the meter's history: E2/E4, one day per turn
  after the live reads that are due, so power reads go on meanwhile (backfill.py). A failed day
  waits on the backfill's own backoff; the live reads never wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta

from echonet.frame import Frame
from pms_collector import metrics
from pms_collector.backfill import SLOT, BackfillDeferred, BackfillRetry, HistoryConflict, SlotBook, backfill_one_day
from pms_collector.link import MeterLinkDriver
from pms_collector.live_config import LiveConfig
from pms_collector.meter import MeterReader, MeterReadError, ScaleRefused, SlotStampError, slot_readings_from_inf
from pms_collector.meter_clock import MeterClock, SkewWatch, Verdict, clock_skew_s, describe_skew
from pms_collector.outbox import Outbox
from pms_collector.readings_json import encode_readings
from pms_common import timeutil
from pms_common.health import Health
from pms_common.messages import EnergyReading, PowerReading
from pms_common.mqtt import Backoff

log = logging.getLogger(__name__)


# How long a turn under way may take to end after the stop before it is cancelled.
STOP_GRACE_S = 2.0

class ReadLoop:
    """Reads the meter on its schedule and stores what it reads in the outbox, batch by batch."""

    def __init__(self, link: MeterLinkDriver, reader: MeterReader, *, meter_clock: MeterClock, slots: SlotBook,
                 outbox: Outbox, config: LiveConfig, health: Health, gateway_id: str,
                 slot_fallback_s: float, on_stored: Callable[[], None],
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], datetime] = timeutil.now_jst,
                 meter_check_s: float = 600.0, skew: SkewWatch | None = None,
                 backfill_retry_s: float = 30.0, on_meter_news: Callable[[], None] = lambda: None) -> None:
        self.link = link
        self.reader = reader
        self.meter_clock = meter_clock
        self.slots = slots
        self.outbox = outbox
        self.config = config
        self.health = health
        self.gateway_id = gateway_id
        self.slot_fallback_s = slot_fallback_s
        self._on_stored = on_stored  # the uplink publishes the new batch without waiting out its poll
        # What the heartbeat says of the meter changed (its scale refused or valid again, a clock skew
        # episode opening or closing, a history conflict let stand): the heartbeat goes at once.
        self._on_meter_news = on_meter_news
        self.monotonic = monotonic
        self.wall = wall  # the gateway's own clock (NTP): power is stamped by it, the meter's is judged by it
        self.meter_check_s = meter_check_s
        self.skew = skew or SkewWatch(threshold_s=300.0)
        self._next_meter_check = 0.0
        self.read_errors = 0
        self._wake = asyncio.Event()  # a push arrived, the config changed, a backfill was asked for
        self._pushes: list[tuple[Frame, float]] = []
        self._thinned_seen = 0
        self._dropped_seen = 0
        self._fallback: tuple[datetime, float] | None = None  # (expected slot, next Get) after a missed push
        # Near the meter's midnight the history waits (until this meter time); other reads go on.
        self._backfill_resume: datetime | None = None
        self.backfill_retry = BackfillRetry(backfill_retry_s)

    def wake_up(self) -> None:
        """Look at the schedule again now: something it depends on changed."""
        self._wake.set()

    # ---- the outbox -------------------------------------------------------------------------------
    def _store(self, readings: list[PowerReading | EnergyReading], meta: dict[str, str] | None = None) -> None:
        has_energy = any(isinstance(r, EnergyReading) for r in readings)
        self.outbox.append(encode_readings(readings), has_energy=has_energy, now=time.time(), meta=meta,
                           slots=[r for r in readings if isinstance(r, EnergyReading)])
        for seen, total, counter in ((self._thinned_seen, self.outbox.thinned_power_batches, metrics.THINNED),
                                     (self._dropped_seen, self.outbox.dropped_energy_batches, metrics.DROPPED_ENERGY)):
            if total > seen:
                counter.inc(total - seen)
        self._thinned_seen, self._dropped_seen = self.outbox.thinned_power_batches, self.outbox.dropped_energy_batches
        for reading in readings:
            metrics.READINGS.labels(reading.kind).inc()
        metrics.OUTBOX_DEPTH.labels(self.gateway_id).set(self.outbox.depth())
        self._on_stored()

    def _on_slot(self, reading: EnergyReading, source: str) -> None:
        meta = self.slots.accept(reading)
        if meta is not None:
            metrics.SLOT_SOURCE.labels(source).inc()
            self._store([reading], meta)

    # ---- the meter's pushes --------------------------------------------------------------------
    def on_push(self, frame: Frame) -> None:
        """The link's notification hook: the push is taken up by the read loop's next turn."""
        self._pushes.append((frame, self.monotonic()))
        self._wake.set()

    def _take_pushes(self) -> None:
        pushes, self._pushes = self._pushes, []
        for frame, received in pushes:
            if self.reader.scale is None:
                continue  # no valid scale (yet): the Get fallback or the backfill reads that slot later
            try:
                reading = slot_readings_from_inf(frame, self.reader.scale)
            except SlotStampError as exc:
                metrics.SLOT_STAMPS_REFUSED.inc()
                log.warning("%s: pushed %s", self.gateway_id, exc)
                continue
            if reading is None:
                continue
            # The meter pushes at the boundary itself: an exact anchor for its clock, once believed.
            expected = self.meter_clock.now() if self.meter_clock.known else None
            verdict = self._observe_clock(reading.slot_end, received, exact=True)
            if verdict is Verdict.HELD:
                assert expected is not None
                log.warning("%s: a push stamped %s arrived when the meter's clock should show %s: neither the "
                            "slot nor the time is taken unless the meter's clock, read now, confirms it",
                            self.gateway_id, reading.slot_end.isoformat(), expected.isoformat(timespec="seconds"))
                self._next_meter_check = 0.0  # read the clock on this very turn
                continue
            self._on_slot(reading, "push")

    def _observe_clock(self, meter_time: datetime, at: float, *, exact: bool) -> Verdict:
        held = self.meter_clock.held
        verdict = self.meter_clock.observe(meter_time, at, exact=exact)
        if verdict is Verdict.HELD:
            metrics.METER_CLOCK_JUMPS.labels("held").inc()
        elif verdict is Verdict.CONFIRMED:
            metrics.METER_CLOCK_JUMPS.labels("believed").inc()
            log.warning("%s: the meter's clock jumped and a second reading confirms it: meter time is now %s",
                        self.gateway_id, meter_time.isoformat(timespec="seconds"))
        elif held is not None:
            metrics.METER_CLOCK_JUMPS.labels("dropped").inc()
            log.warning("%s: the meter's clock reads %s, as expected: the reading of %s was a stray and is "
                        "dropped", self.gateway_id, meter_time.isoformat(timespec="seconds"),
                        held.meter_time.isoformat(timespec="seconds"))
        return verdict

    # ---- the read loop ----------------------------------------------------------------------------
    async def _after_join(self) -> None:
        # A rejoin may follow a meter swap or a firmware update: the scale is read again every time.
        await self._check_meter()
        log.info("%s: meter joined; scale %s, meter clock %s", self.gateway_id,
                 self.reader.scale or self.reader.scale_problem, self.meter_clock.now().isoformat())

    async def _check_meter(self) -> None:
        """Read the register scale and the meter's clock, and judge both."""
        self._next_meter_check = self.monotonic() + self.meter_check_s
        had_problem = self.reader.scale_problem
        try:
            await self.reader.read_scale()
        except ScaleRefused as exc:
            if str(exc) != had_problem:
                log.error("%s: %s", self.gateway_id, exc)
        else:
            if had_problem is not None:
                log.warning("%s: the meter's scale is valid again (%s): energy is read again",
                            self.gateway_id, self.reader.scale)
        metrics.METER_SCALE_VALID.labels(self.gateway_id).set(int(self.reader.scale is not None))
        if self.reader.scale_problem != had_problem:
            self._on_meter_news()
        before, sent = self.wall(), self.monotonic()
        meter_now = await self.reader.read_clock()
        after, answered = self.wall(), self.monotonic()
        self._judge_skew(clock_skew_s(meter_now, before, after), after)
        # 0x97 has minutes only. Where the gateway's clock agrees to the minute (NTP), its seconds
        # are the better guess; otherwise the middle of the minute halves the worst error.
        guess = after if meter_now <= after < meter_now + timedelta(minutes=1) else meter_now + timedelta(seconds=30)
        self._observe_clock(guess, (sent + answered) / 2, exact=False)

    def _judge_skew(self, skew_s: float, at: datetime) -> None:
        change = self.skew.update(skew_s, at)
        metrics.METER_CLOCK_SKEW.labels(self.gateway_id).set(self.skew.skew_s or 0.0)
        if change is not None:
            self._on_meter_news()
        if change is True:
            log.warning("%s: the meter's clock is %s the gateway's (more than %.0f s): slots keep the meter's "
                        "times, power is stamped by the gateway", self.gateway_id, describe_skew(skew_s),
                        self.skew.threshold_s)
        elif change is False:
            log.warning("%s: the meter's clock agrees with the gateway's again (%+.0f s)", self.gateway_id, skew_s)

    def _slot_due(self, now: float) -> float:
        """When to Get EA/EB because the push for the next slot did not come."""
        expected = (self.slots.latest or timeutil.slot_end_at_or_before(self.meter_clock.now())) + SLOT
        due = self.meter_clock.monotonic_at(expected) + self.slot_fallback_s
        if self.slots.latest is None:
            due = now  # nothing stored yet: read the last slot at once
        if self._fallback is not None and self._fallback[0] == expected:
            due = max(due, self._fallback[1])
        return due

    async def _read_slot(self, now: float) -> None:
        expected = (self.slots.latest or timeutil.slot_end_at_or_before(self.meter_clock.now())) + SLOT
        self._fallback = (expected, now + self.slot_fallback_s)
        try:
            reading = await self.reader.read_fixed_time_energy()
        except SlotStampError as exc:  # the next Get comes after slot_fallback_s, as for a missed push
            metrics.SLOT_STAMPS_REFUSED.inc()
            log.warning("%s: %s", self.gateway_id, exc)
            return
        if reading is not None:
            self._on_slot(reading, "get")

    def _backfill_due(self, now: float) -> bool:
        # Meter time, not a monotonic deadline: a sped-up simulated meter's rate is learned later.
        resume = self._backfill_resume
        # Never from a refused scale, and on the backfill's own backoff after a failure.
        return (self.reader.scale is not None and self.slots.pending and self.backfill_retry.due(now)
                and (resume is None or self.meter_clock.now() >= resume))

    def _backfill_wake(self) -> float | None:
        """When a pending backfill may go on (monotonic), if it waits for something."""
        if not self.slots.pending:
            return None
        times = [self.backfill_retry.retry_at]
        if self._backfill_resume is not None:
            times.append(self.meter_clock.monotonic_at(self._backfill_resume))
        return max((t for t in times if t is not None), default=None)

    async def _backfill(self) -> None:
        target = self.slots.next_range()
        assert target is not None
        day = (target.after + SLOT).astimezone(timeutil.JST).date()
        try:
            result = await backfill_one_day(self.slots, self.reader, self.meter_clock,
                                            accept_conflicts=self.backfill_retry.accept_conflicts(day))
        except BackfillDeferred as deferred:
            self._backfill_resume = deferred.resume_at
            log.info("%s: %s", self.gateway_id, deferred)
            return
        except HistoryConflict as conflict:
            self.backfill_retry.conflict_seen(conflict.day)
            self._backfill_failed("conflict", str(conflict))
            return
        except MeterReadError as exc:
            self._backfill_failed("meter", f"E5/E2/E4 for {day}: {exc}")
            return
        self._backfill_resume = None
        self.backfill_retry.succeeded()
        if result.conflicts:
            disagreement = HistoryConflict(day, result.conflicts)
            metrics.HISTORY_CONFLICTS.inc(len(result.conflicts))
            self.backfill_retry.conflicts_reported(disagreement)
            log.warning("%s: %s; the live values stand, the day's other slots are taken from the history",
                        self.gateway_id, disagreement)
            self._on_meter_news()
        if result.readings:
            self._store(list(result.readings), result.meta)
        else:
            for key, value in result.meta.items():
                self.outbox.set_meta(key, value)
        metrics.BACKFILL_PENDING_DAYS.labels(self.gateway_id).set(self.slots.pending_days())

    def _backfill_failed(self, reason: str, message: str) -> None:
        metrics.BACKFILL_FAILURES.labels(reason).inc()
        metrics.BACKFILL_PENDING_DAYS.labels(self.gateway_id).set(self.slots.pending_days())
        delay = self.backfill_retry.failed(message, self.monotonic())  # from the end of the attempt
        log.warning("%s: backfill failed (%s); power and registers read on, the backfill tries again in %.1f s",
                    self.gateway_id, message, delay)

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop`. A turn under way when it comes may end within STOP_GRACE_S; after that it
        is cancelled: a request to a session that is going away would otherwise hold the stop up for
        its whole timeout (read_timeout_s, 30 s), and its retries after. Nothing is torn by it: an
        outbox write is one transaction, and a slot not yet stored is read again on the next start."""
        await _unless_stopped(stop, self._turns(stop), grace_s=STOP_GRACE_S)

    async def _turns(self, stop: asyncio.Event) -> None:
        backoff = Backoff(initial_s=0.5, maximum_s=30.0)
        joins_seen = 0
        next_power = 0.0
        # When the registers were last read: the next read is due an interval after it, the
        # interval in effect now (a pushed configuration changes it live).
        registers_read_at: float | None = None
        while not stop.is_set():
            self._wake.clear()  # set again by anything arriving from here on, so nothing waits a turn
            wait = 1.0
            try:
                ready = self.link.ready.is_set()
                metrics.LINK_READY.labels(self.gateway_id).set(int(ready))
                self.health.set(f"meter:{self.gateway_id}", ready)
                if not self.link.ready.is_set():
                    await _wait_any(stop, self.link.ready, wait_s=1.0)
                    continue
                if self.link.joins != joins_seen or not self.reader.scale_checked or not self.meter_clock.known:
                    joins_seen = self.link.joins
                    await self._after_join()
                self._take_pushes()
                if self.monotonic() >= self._next_meter_check:
                    await self._check_meter()
                energy = self.reader.scale is not None  # never an energy value from a refused scale
                now = self.monotonic()
                if energy and now >= self._slot_due(now):
                    await self._read_slot(now)
                now = self.monotonic()
                if now >= next_power:
                    power = await self.reader.read_power(self.wall())
                    if power is not None:
                        self._store([power])
                    next_power += self.config.power_interval_s
                    if next_power <= now:  # fell behind (a slow link, a backfill): skip, do not burst
                        next_power = now + self.config.power_interval_s
                next_registers = (0.0 if registers_read_at is None
                                  else registers_read_at + self.config.energy_interval_s)
                if energy and now >= next_registers:
                    forward, reverse = await self.reader.read_registers_now()
                    for direction, kwh in (("forward", forward), ("reverse", reverse)):
                        if kwh is not None:
                            metrics.REGISTER_KWH.labels(direction).set(kwh)
                    registers_read_at = now
                    next_registers = now + self.config.energy_interval_s
                # The history last, one day per turn: what is due above never waits for it.
                now = self.monotonic()
                if self._backfill_due(now) and self.link.ready.is_set() and not stop.is_set():
                    await _unless_stopped(stop, self._backfill())
                backoff.reset()
                now = self.monotonic()
                if self._backfill_due(now) and not stop.is_set():
                    wait = 0.0
                else:
                    due = [next_power, self._next_meter_check]
                    if energy:
                        due += [next_registers, self._slot_due(now)]
                        backfill_at = self._backfill_wake()
                        if backfill_at is not None:
                            due.append(backfill_at)
                    wait = max(0.0, min(due) - now)
            except MeterReadError as exc:
                if stop.is_set():
                    # The stop closed the link under this request ("session closed"): not the meter's doing.
                    return
                self.read_errors += 1
                metrics.READ_ERRORS.inc()
                wait = backoff.next_delay()
                log.warning("%s: meter read failed (%s); next try in %.1f s", self.gateway_id, exc, wait)
            except Exception:  # a field agent logs a bug and reads on: it must not die of one frame
                self.read_errors += 1
                metrics.READ_ERRORS.inc()
                wait = backoff.next_delay()
                log.exception("%s: unexpected error in the read loop; next try in %.1f s", self.gateway_id, wait)
            if wait > 0:
                await _wait_any(stop, self._wake, wait_s=wait)


async def _unless_stopped(stop: asyncio.Event, work: Coroutine[object, object, None], *,
                          grace_s: float = 0.0) -> None:
    """Run `work`, cancelled if `stop` is set first (after `grace_s` more for it to end by itself): a
    backfill day (several requests, each of which may wait for a session that is going away) must not
    hold up a shutdown. The slot book changes only once a day is read whole, so a cancelled day is
    simply read again next time."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and grace_s > 0:
            await asyncio.wait([task], timeout=grace_s)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.done() and not task.cancelled():
        task.result()  # re-raise what the work raised


async def _wait_any(stop: asyncio.Event, other: asyncio.Event, *, wait_s: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(other.wait())]
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED), wait_s)
    finally:
        for waiter in waiters:
            waiter.cancel()
