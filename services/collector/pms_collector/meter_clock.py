"""The meter's clock as seen from the gateway: readings carry the meter's time, not the gateway's.

The gateway's own clock may be wrong (no RTC, NTP not yet synced after a power cut) and the
simulator's meter may run faster than real time. Anchors come from the meter: its INF push at a
slot end is exact to the second (the push leaves at the boundary), its clock property (0x97/0x98)
to the minute. Between anchors the meter time advances at the rate measured between the last two
exact anchors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

# A real meter runs at 1.0; the limits only keep a bad pair of anchors from producing nonsense.
_MIN_RATE, _MAX_RATE = 0.5, 100_000.0


class MeterClock:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self.rate = 1.0
        self._anchor: tuple[datetime, float] | None = None
        self._exact: tuple[datetime, float] | None = None

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
        if self._anchor is None:
            raise RuntimeError("the meter clock has no anchor yet: read 0x97/0x98 first")
        meter_time, at = self._anchor
        return meter_time + timedelta(seconds=(self.monotonic() - at) * self.rate)

    def monotonic_at(self, meter_time: datetime) -> float:
        """When (on the monotonic clock) the meter's clock will show `meter_time`."""
        if self._anchor is None:
            return self.monotonic()
        anchor_time, at = self._anchor
        return at + (meter_time - anchor_time).total_seconds() / self.rate

    def real_seconds(self, meter_seconds: float) -> float:
        return meter_seconds / self.rate
