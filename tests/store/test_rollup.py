from __future__ import annotations

from datetime import datetime

import pytest

from pms_common import timeutil
from pms_store import rollup

JST = timeutil.JST


def epoch(*args: int) -> int:
    return timeutil.to_epoch(datetime(*args, tzinfo=JST))  # type: ignore[misc]


def test_a_slot_belongs_to_the_hour_of_its_start() -> None:
    assert rollup.hour_of_slot(epoch(2024, 6, 1, 10, 30)) == epoch(2024, 6, 1, 10)
    assert rollup.hour_of_slot(epoch(2024, 6, 1, 11, 0)) == epoch(2024, 6, 1, 10)


@pytest.mark.parametrize(
    ("moment", "day"),
    [((2024, 6, 1, 0, 0), (2024, 6, 1)), ((2024, 6, 1, 8, 59), (2024, 6, 1)), ((2024, 6, 1, 23, 59), (2024, 6, 1))],
)
def test_days_start_at_midnight_japan_time(moment: tuple[int, ...], day: tuple[int, ...]) -> None:
    assert rollup.day_start(epoch(*moment)) == epoch(*day)


@pytest.mark.parametrize(
    ("moment", "month", "after"),
    [
        ((2024, 2, 29, 23, 59), (2024, 2, 1), (2024, 3, 1)),  # a leap February
        ((2024, 12, 31, 23, 0), (2024, 12, 1), (2025, 1, 1)),
        ((2025, 1, 1, 0, 0), (2025, 1, 1), (2025, 2, 1)),  # 15:00 UTC on 31 December
    ],
)
def test_months_follow_the_japan_calendar(moment: tuple[int, ...], month: tuple[int, ...], after: tuple[int, ...]) -> None:
    start = rollup.month_start(epoch(*moment))
    assert start == epoch(*month)
    assert rollup.next_month_start(start) == epoch(*after)
    assert rollup.period_end("month", start) == epoch(*after)
    assert rollup.floor_to("month", epoch(*moment)) == start


def test_floor_to_each_interval() -> None:
    t = epoch(2024, 6, 1, 10, 47, 12)
    assert rollup.floor_to("30min", t) == epoch(2024, 6, 1, 10, 30)
    assert rollup.floor_to("hour", t) == epoch(2024, 6, 1, 10)
    assert rollup.floor_to("day", t) == epoch(2024, 6, 1)
