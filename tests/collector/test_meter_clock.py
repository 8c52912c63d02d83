from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pms_collector.meter_clock import MeterClock, SkewWatch, Verdict, clock_skew_s
from pms_common.timeutil import JST

T = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


class Mono:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_comes_from_two_exact_anchors() -> None:
    mono = Mono()
    clock = MeterClock(mono)
    assert not clock.known
    with pytest.raises(RuntimeError, match="no anchor"):
        clock.now()
    clock.anchor(T, 100.0, exact=True)
    clock.anchor(T + timedelta(minutes=30), 100.5, exact=True)  # a meter 3600 times faster
    assert clock.rate == pytest.approx(3600)
    mono.now = 101.0
    assert clock.now() == T + timedelta(minutes=60)
    assert clock.monotonic_at(T + timedelta(minutes=90)) == pytest.approx(101.5)


def test_a_minute_reading_never_replaces_an_exact_anchor() -> None:
    mono = Mono()
    clock = MeterClock(mono)
    clock.anchor(T + timedelta(seconds=30), 100.0, exact=False)
    assert clock.now() == T + timedelta(seconds=30)
    clock.anchor(T + timedelta(minutes=30), 100.0, exact=True)
    clock.anchor(T + timedelta(minutes=2), 100.0, exact=False)
    assert clock.now() == T + timedelta(minutes=30)
    assert clock.rate == 1.0


def test_a_single_jump_is_held_until_the_next_reading_confirms_it() -> None:
    """One push stamped 46 minutes ahead once moved the collector's idea of meter time; now a jump
    waits for the next reading: dropped if that agrees with the model, believed if it confirms."""
    clock = MeterClock(Mono())
    clock.anchor(T + timedelta(seconds=30), 100.0, exact=False)
    clock.anchor(T + timedelta(minutes=30), 1870.0, exact=True)  # the 12:30 push
    # A stray push at 12:14 stamped 13:00: held, the model stays where it was.
    assert clock.observe(T + timedelta(minutes=60), 2710.0, exact=True) is Verdict.HELD
    assert clock.held is not None
    assert clock._at(2710.0) == T + timedelta(minutes=44)
    # The meter's clock, read next, says 12:14: the stray is dropped.
    assert clock.observe(T + timedelta(minutes=44), 2720.0, exact=False) is Verdict.AGREES
    assert clock.held is None and clock._at(2720.0) == T + timedelta(minutes=44, seconds=10)


def test_a_push_taken_up_late_keeps_its_slot_and_leaves_the_model_alone() -> None:
    """On a gateway that falls behind (hundreds of simulated plants on two cores), the 17:00 push was
    taken up at 17:06:50 and held as a jump: its slot waited for the Get fallback. A push stamped less
    than a slot before the model's time is the slot that has just ended."""
    clock = MeterClock(Mono())
    clock.anchor(T + timedelta(minutes=30), 100.0, exact=True)  # the 12:30 push
    assert clock.observe(T + timedelta(minutes=60), 2310.0, exact=True) is Verdict.LATE  # 13:00 at 13:06:50
    assert clock.held is None and clock._at(2310.0) == T + timedelta(minutes=66, seconds=50)
    # Stamped a slot or more before the model's time, or ahead of it: a jump, held as before.
    assert clock.observe(T + timedelta(minutes=30), 2400.0, exact=True) is Verdict.HELD


def test_a_confirmed_jump_moves_the_model() -> None:
    clock = MeterClock(Mono())
    clock.anchor(T, 100.0, exact=True)
    # Someone set the meter 20 minutes ahead: two clock reads a minute apart agree with each other.
    assert clock.observe(T + timedelta(minutes=30), 700.0, exact=False) is Verdict.HELD
    assert clock._at(700.0) == T + timedelta(minutes=10)
    assert clock.observe(T + timedelta(minutes=31), 760.0, exact=False) is Verdict.CONFIRMED
    assert clock._at(760.0) == T + timedelta(minutes=31)
    assert clock.rate == 1.0  # no rate learned across the jump


def test_a_frozen_clock_is_never_believed() -> None:
    clock = MeterClock(Mono())
    clock.anchor(T, 100.0, exact=False)
    for at in (1300.0, 2500.0, 3700.0):
        assert clock.observe(T, at, exact=False) is Verdict.HELD
    assert clock._at(3700.0) == T + timedelta(seconds=3600)


def test_the_skew_counts_only_what_lies_beyond_resolution_and_latency() -> None:
    gateway = T + timedelta(seconds=40)
    assert clock_skew_s(T, gateway, gateway + timedelta(seconds=2)) == 0.0  # 12:00 shown at 12:00:40
    assert clock_skew_s(T + timedelta(minutes=20), gateway, gateway) == 1160.0  # at least 19:20 ahead
    assert clock_skew_s(T - timedelta(minutes=10), gateway, gateway) == -580.0  # 12:00:40 shows 11:50


def test_a_skew_episode_begins_and_ends_once() -> None:
    watch = SkewWatch(threshold_s=300)
    assert watch.update(10, T) is None and watch.since is None
    assert watch.update(1200, T + timedelta(minutes=10)) is True
    assert watch.update(1190, T + timedelta(minutes=20)) is None
    assert watch.since == T + timedelta(minutes=10) and watch.skew_s == 1190
    assert watch.update(-2, T + timedelta(minutes=30)) is False and watch.since is None
