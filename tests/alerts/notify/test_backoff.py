"""Retry delays: exponential, capped, jittered within bounds; dead after the maximum age."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from pms_alerts.notify.backoff import RetryPolicy
from pms_common.timeutil import JST

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


@pytest.mark.parametrize("jitter", ["full", "equal"])
def test_delays_stay_within_their_bounds(jitter: str) -> None:
    policy = RetryPolicy(base_s=10, factor=2, cap_s=600, max_age_s=86_400, jitter=jitter)  # type: ignore[arg-type]
    rng = random.Random(7)
    for attempts in range(1, 40):
        ceiling = min(600.0, 10 * 2 ** (attempts - 1))
        assert policy.ceiling_s(attempts) == ceiling
        floor = 0.0 if jitter == "full" else ceiling / 2
        delays = [policy.delay_s(attempts, rng) for _ in range(200)]
        assert all(floor <= delay <= ceiling for delay in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jitter spreads a crowd


def test_huge_attempt_counts_stay_capped() -> None:
    assert RetryPolicy().ceiling_s(10_000) == 600.0


def test_dead_after_the_maximum_age() -> None:
    policy = RetryPolicy(base_s=10, cap_s=600, max_age_s=3600, jitter="equal")
    rng = random.Random(1)
    failed_at, attempts, times = T0, 0, []
    while True:
        attempts += 1
        nxt = policy.next_attempt(created_at=T0, failed_at=failed_at, failed_attempts=attempts, rng=rng)
        if nxt is None:
            break
        assert nxt - T0 <= timedelta(seconds=3600)
        times.append(nxt)
        failed_at = nxt
    assert times == sorted(times)
    assert 8 <= len(times) <= 14  # 5+10+20+40+80+160+300.. s, then 300-600 s steps to an hour
    assert failed_at > T0 + timedelta(seconds=3000)  # the last attempt is within the cap of the end


def test_a_nonsense_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="base > 0"):
        RetryPolicy(base_s=0)
