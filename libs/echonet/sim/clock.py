"""The simulated world's clock, shared by the simulators and, in development, by a collector beside them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class SimClock:
    """The simulated world's time: `start` at monotonic time `origin`, running `speed` times faster
    than the monotonic clock (--speed 60: a minute a second)."""

    start: datetime
    speed: float
    origin: float

    @classmethod
    def anchored(cls, start: datetime, speed: float, anchor_epoch: float | None = None) -> SimClock:
        """A clock that reads `start` at Unix time `anchor_epoch` (None: now). Two processes given the
        same three values agree to within microseconds: a sped-up meter simulated in one and a collector
        in another then share one world time (at 6000 times real time, 0.1 s is 10 minutes)."""
        monotonic_now, epoch_now = time.monotonic(), time.time()
        if anchor_epoch is None:
            return cls(start, speed, monotonic_now)
        return cls(start, speed, monotonic_now - (epoch_now - anchor_epoch))

    def __call__(self, monotonic_now: float) -> datetime:
        return self.start + timedelta(seconds=(monotonic_now - self.origin) * self.speed)
