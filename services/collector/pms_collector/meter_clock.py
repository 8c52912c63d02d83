"""The meter's clock as seen from the gateway: readings carry the meter's time, not the gateway's.

The gateway's own clock may be wrong (no RTC, NTP not yet synced after a power cut) and the
simulator's meter may run faster than real time. Anchors come from the meter: its INF push at a
slot end is exact to the second (the push leaves at the boundary), its clock property (0x97/0x98)
to the minute. Between anchors the meter time advances at the rate measured between the last two
exact anchors.

A reading that jumps away from where the model puts the meter's clock (a stray push stamped an hour
ahead, a clock read after someone set the meter) is held, not believed: it moves the model only when
the next reading confirms it, and is dropped when the next reading agrees with the model instead.

Separately, `SkewWatch` judges the meter's clock against the gateway's own (NTP-synchronised) one:
slot times stay the meter's, as the utility bills by them, but a meter clock off by more than a
threshold is reported (the heartbeat, a metric, and from there one `meter_clock_skew` event).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

# A real meter runs at 1.0; the limits only keep a bad pair of anchors from producing nonsense.
_MIN_RATE, _MAX_RATE = 0.5, 100_000.0
# How far a reading may stray from the model before it counts as a jump: a meter's INF may leave a
# little after the boundary, and a sped-up simulated meter covers minutes in a second of latency.
JUMP_TOLERANCE = timedelta(minutes=5)
# A push taken up late (a busy gateway, a slow radio) still names the slot that has just ended: its
# slot is right, though its stamp says nothing about the meter's clock now.
LATE_PUSH_MAX = timedelta(minutes=30)
_MINUTE = timedelta(minutes=1)


class Verdict(enum.Enum):
    AGREES = "agrees"  # the reading fits the model (and anchored it)
    CONFIRMED = "confirmed"  # the reading confirmed a jump held before: the model moved
    HELD = "held"  # the reading jumps away from the model: held until the next reading
    LATE = "late"  # a push stamped less than a slot before the model's time: taken, the model not moved


@dataclass(frozen=True)
class HeldReading:
    meter_time: datetime
    at_monotonic: float
    exact: bool


class MeterClock:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self.rate = 1.0
        self._anchor: tuple[datetime, float] | None = None
        self._exact: tuple[datetime, float] | None = None
        self.held: HeldReading | None = None  # a jump seen once, waiting for the next reading

    def tolerance(self, *exact: bool) -> timedelta:
        """How far apart two readings may be and still agree (minute readings are coarser)."""
        margin = max(JUMP_TOLERANCE, timedelta(seconds=self.rate))
        return margin + _MINUTE * sum(1 for e in exact if not e)

    def observe(self, meter_time: datetime, at_monotonic: float, *, exact: bool) -> Verdict:
        """Take a reading of the meter's clock unless it jumps away from the model; a jump moves the
        model only when the next reading confirms it (see the module's docstring)."""
        if self._anchor is None:
            self.anchor(meter_time, at_monotonic, exact=exact)
            return Verdict.AGREES
        expected = self._at(at_monotonic)
        if abs(meter_time - expected) <= self.tolerance(exact, self.exact):
            self.held = None
            self.anchor(meter_time, at_monotonic, exact=exact)
            return Verdict.AGREES
        if exact and timedelta(0) < expected - meter_time < LATE_PUSH_MAX:
            return Verdict.LATE
        held = self.held
        if held is not None:
            moved = held.meter_time + timedelta(seconds=(at_monotonic - held.at_monotonic) * self.rate)
            if abs(meter_time - moved) <= self.tolerance(exact, held.exact):
                # The jump is real: start the model afresh from this reading (no rate across the jump).
                self.held = None
                self._exact = None
                self.anchor(meter_time, at_monotonic, exact=exact)
                return Verdict.CONFIRMED
        self.held = HeldReading(meter_time, at_monotonic, exact)
        return Verdict.HELD

    @property
    def known(self) -> bool:
        return self._anchor is not None

    @property
    def exact(self) -> bool:
        return self._exact is not None

    def anchor(self, meter_time: datetime, at_monotonic: float, *, exact: bool) -> None:
        if exact:
            previous = self._exact
            if previous is not None:
                meter_s = (meter_time - previous[0]).total_seconds()
                local_s = at_monotonic - previous[1]
                if meter_s > 0 and local_s > 0.05:
                    self.rate = min(_MAX_RATE, max(_MIN_RATE, meter_s / local_s))
            self._exact = (meter_time, at_monotonic)
        elif self._exact is not None:
            return  # a minute-resolution reading never replaces an exact anchor
        self._anchor = (meter_time, at_monotonic)

    def now(self) -> datetime:
        return self._at(self.monotonic())

    def _at(self, at_monotonic: float) -> datetime:
        if self._anchor is None:
            raise RuntimeError("the meter clock has no anchor yet: read 0x97/0x98 first")
        meter_time, at = self._anchor
        return meter_time + timedelta(seconds=(at_monotonic - at) * self.rate)

    def monotonic_at(self, meter_time: datetime) -> float:
        """When (on the monotonic clock) the meter's clock will show `meter_time`."""
        if self._anchor is None:
            return self.monotonic()
        anchor_time, at = self._anchor
        return at + (meter_time - anchor_time).total_seconds() / self.rate

    def real_seconds(self, meter_seconds: float) -> float:
        return meter_seconds / self.rate


def clock_skew_s(meter_minute: datetime, gateway_before: datetime, gateway_after: datetime) -> float:
    """How far the meter's clock is provably ahead (+) or behind (-) the gateway's, in seconds.

    The meter shows minutes only (0x97), so its clock was somewhere in [minute, minute + 60 s) at some
    moment between the request and the answer: only what lies beyond that window counts, so neither
    the reading's resolution nor the link's latency is ever reported as skew.
    """
    ahead = (meter_minute - gateway_after).total_seconds()
    behind = (meter_minute + _MINUTE - gateway_before).total_seconds()
    if ahead > 0:
        return ahead
    if behind < 0:
        return behind
    return 0.0


class SkewWatch:
    """The meter clock's skew as last judged, and since when it is beyond the threshold."""

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self.skew_s: float | None = None  # None until judged
        self.since: datetime | None = None  # the start of the current episode, None while within

    def update(self, skew_s: float, at: datetime) -> bool | None:
        """Record a judgement; True when an episode begins, False when it ends, else None."""
        self.skew_s = round(skew_s, 1)
        beyond = abs(skew_s) > self.threshold_s
        if beyond and self.since is None:
            self.since = at
            return True
        if not beyond and self.since is not None:
            self.since = None
            return False
        return None


def describe_skew(skew_s: float) -> str:
    """"20 minutes ahead of", "45 s behind": how the meter's clock stands to the gateway's."""
    seconds = abs(skew_s)
    amount = f"{seconds:.0f} s" if seconds < 120 else (
        f"{seconds / 60:.0f} minutes" if seconds < 7200 else f"{seconds / 3600:.1f} hours")
    return f"{amount} {'ahead of' if skew_s > 0 else 'behind'}"
