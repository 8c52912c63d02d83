"""Grouping per channel with Alertmanager's group_wait / group_interval."""

from __future__ import annotations

from datetime import datetime, timedelta

from pms_alerts.notify.grouping import GroupTiming, due_channels, flush_at, next_flush
from pms_common.timeutil import JST

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
TIMING = GroupTiming(group_wait_s=30, group_interval_s=300)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_first_after_a_quiet_spell_waits_group_wait() -> None:
    assert flush_at(first_queued_at=at(0), last_flush_at=None, timing=TIMING) == at(30)
    assert flush_at(first_queued_at=at(1000), last_flush_at=at(0), timing=TIMING) == at(1030)


def test_within_the_interval_waits_for_its_end() -> None:
    assert flush_at(first_queued_at=at(40), last_flush_at=at(30), timing=TIMING) == at(330)


def test_a_storm_goes_out_as_one_group_per_interval() -> None:
    first_queued = {1: at(0), 2: at(3)}  # channel 1: the first of 1,000 happenings queued at 0 s
    timings = {1: TIMING, 2: GroupTiming(10, 60)}
    assert due_channels(first_queued, last_flush={}, timings=timings, now=at(12)) == []
    assert due_channels(first_queued, last_flush={}, timings=timings, now=at(13)) == [2]
    assert due_channels(first_queued, last_flush={}, timings=timings, now=at(30)) == [1, 2]
    assert next_flush(first_queued, last_flush={1: at(30)}, timings=timings) == at(13)
    assert next_flush({}, last_flush={}, timings=timings) is None
    assert due_channels({3: at(0)}, last_flush={}, timings=timings, now=at(999)) == []  # no such channel


def test_the_recovery_of_a_storm_waits_for_the_interval() -> None:
    first_queued = {1: at(100)}
    assert due_channels(first_queued, last_flush={1: at(30)}, timings={1: TIMING}, now=at(329)) == []
    assert due_channels(first_queued, last_flush={1: at(30)}, timings={1: TIMING}, now=at(330)) == [1]
