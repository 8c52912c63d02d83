from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pms_collector.meter_clock import MeterClock
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
