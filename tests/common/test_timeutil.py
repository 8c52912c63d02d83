from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from pms_common import timeutil
from pms_common.timeutil import JST


def test_jst_is_nine_hours_ahead_of_utc() -> None:
    assert datetime(2026, 6, 1, 9, 0, tzinfo=JST).astimezone(UTC) == datetime(2026, 6, 1, 0, 0, tzinfo=UTC)


def test_now_jst_is_aware_and_in_japan_time() -> None:
    now = timeutil.now_jst()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(hours=9)


def test_require_aware_refuses_naive() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        timeutil.require_aware(datetime(2026, 6, 1, 12, 0))
    aware = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert timeutil.require_aware(aware) is aware


def test_epoch_round_trip_lands_in_jst() -> None:
    moment = datetime(2026, 6, 1, 12, 34, 56, tzinfo=JST)
    epoch = timeutil.to_epoch(moment)
    assert epoch == int(moment.timestamp())
    back = timeutil.from_epoch(epoch)
    assert back == moment
    assert back.utcoffset() == timedelta(hours=9)


def test_to_epoch_refuses_naive() -> None:
    with pytest.raises(ValueError):
        timeutil.to_epoch(datetime(2026, 6, 1))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 6, 1, 12, 0, tzinfo=JST), datetime(2026, 6, 1, 12, 0, tzinfo=JST)),
        (datetime(2026, 6, 1, 12, 29, 59, tzinfo=JST), datetime(2026, 6, 1, 12, 0, tzinfo=JST)),
        (datetime(2026, 6, 1, 12, 30, tzinfo=JST), datetime(2026, 6, 1, 12, 30, tzinfo=JST)),
        (datetime(2026, 6, 1, 0, 10, tzinfo=JST), datetime(2026, 6, 1, 0, 0, tzinfo=JST)),
        # A UTC moment gives the same boundary, expressed in JST.
        (datetime(2026, 6, 1, 3, 45, tzinfo=UTC), datetime(2026, 6, 1, 12, 30, tzinfo=JST)),
    ],
)
def test_slot_end_at_or_before(moment: datetime, expected: datetime) -> None:
    found = timeutil.slot_end_at_or_before(moment)
    assert found == expected
    assert found.utcoffset() == timedelta(hours=9)


def test_day_start_is_jst_midnight() -> None:
    start = timeutil.day_start(date(2026, 6, 1))
    assert start == datetime(2026, 5, 31, 15, 0, tzinfo=UTC)
    assert (start.hour, start.minute) == (0, 0)


@pytest.mark.parametrize(
    ("slot_end", "day"),
    [
        (datetime(2026, 6, 1, 0, 30, tzinfo=JST), date(2026, 6, 1)),  # first slot of the day
        (datetime(2026, 6, 1, 12, 0, tzinfo=JST), date(2026, 6, 1)),
        (datetime(2026, 6, 1, 23, 30, tzinfo=JST), date(2026, 6, 1)),
        (datetime(2026, 6, 2, 0, 0, tzinfo=JST), date(2026, 6, 1)),  # the 00:00 slot closes the previous day
        # 15:00 UTC = 00:00 JST next day: still the previous JST day, whatever zone it comes in.
        (datetime(2026, 6, 1, 15, 0, tzinfo=UTC), date(2026, 6, 1)),
        (datetime(2026, 6, 1, 15, 30, tzinfo=UTC), date(2026, 6, 2)),
    ],
)
def test_jst_day_of_slot(slot_end: datetime, day: date) -> None:
    assert timeutil.jst_day_of_slot(slot_end) == day


def test_jst_day_of_slot_refuses_naive() -> None:
    with pytest.raises(ValueError):
        timeutil.jst_day_of_slot(datetime(2026, 6, 1, 0, 0))


def test_today_bounds_is_the_jst_day() -> None:
    start, end = timeutil.today_bounds(datetime(2026, 6, 1, 12, 0, tzinfo=JST))
    assert start == datetime(2026, 6, 1, 0, 0, tzinfo=JST)
    assert end == datetime(2026, 6, 2, 0, 0, tzinfo=JST)


def test_today_bounds_of_a_utc_moment_uses_the_japan_day() -> None:
    # 2026-06-01 16:00 UTC is already 2026-06-02 01:00 in Japan.
    start, end = timeutil.today_bounds(datetime(2026, 6, 1, 16, 0, tzinfo=UTC))
    assert start == datetime(2026, 6, 2, 0, 0, tzinfo=JST)
    assert end - start == timedelta(days=1)


def test_today_bounds_agrees_with_jst_day_of_slot() -> None:
    start, end = timeutil.today_bounds(datetime(2026, 6, 1, 0, 0, tzinfo=JST))
    # At exactly 00:00 the JST day is the new one; its slots end in (start, end].
    assert start == datetime(2026, 6, 1, 0, 0, tzinfo=JST)
    assert timeutil.jst_day_of_slot(start + timeutil.SLOT) == start.date()
    assert timeutil.jst_day_of_slot(end) == start.date()
    assert timeutil.jst_day_of_slot(start) == start.date() - timedelta(days=1)


def test_today_bounds_refuses_naive() -> None:
    with pytest.raises(ValueError):
        timeutil.today_bounds(datetime(2026, 6, 1, 12, 0))
