"""When a failed delivery is tried again, and when it is given up (sans-IO).

Exponential backoff with jitter, capped, bounded by a maximum age: the delay after the n-th failed
attempt is `base * factor**(n-1)`, at most `cap`; "full" jitter draws it uniformly from [0, delay],
"equal" jitter from [delay/2, delay] (never retries at once, still spreads a crowd of deliveries
that failed together). A delivery older than `max_age` at its next attempt is dead instead."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Jitter = Literal["full", "equal"]


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 10.0
    factor: float = 2.0
    cap_s: float = 600.0
    max_age_s: float = 86_400.0
    jitter: Jitter = "equal"

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.factor < 1 or self.cap_s < self.base_s or self.max_age_s <= 0:
            raise ValueError("a retry policy needs base > 0, factor >= 1, cap >= base and max age > 0")

    def ceiling_s(self, failed_attempts: int) -> float:
        """The delay before jitter after `failed_attempts` (>= 1) failures."""
        exponent = max(0, failed_attempts - 1)
        # Past ~60 doublings the float overflows long after the cap has taken over.
        return self.cap_s if exponent > 60 else min(self.cap_s, self.base_s * self.factor ** exponent)

    def delay_s(self, failed_attempts: int, rng: random.Random) -> float:
        ceiling = self.ceiling_s(failed_attempts)
        if self.jitter == "full":
            return rng.uniform(0.0, ceiling)
        return rng.uniform(ceiling / 2, ceiling)

    def next_attempt(self, *, created_at: datetime, failed_at: datetime, failed_attempts: int,
                     rng: random.Random) -> datetime | None:
        """When to try again after a failure, or None: the delivery has outlived `max_age_s` (dead)."""
        at = failed_at + timedelta(seconds=self.delay_s(failed_attempts, rng))
        if at - created_at > timedelta(seconds=self.max_age_s):
            return None
        return at
