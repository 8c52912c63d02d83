"""Sunset, sunrise and the night window (pvlib's SPA) at plants in Japan."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pms_common.timeutil import JST
from pms_pv.sun import TOKYO, night_window, sun_times


def test_tokyo_sun_times_match_the_almanac_within_two_minutes() -> None:
    # Tokyo at the solstices, as almanacs give it: June rise 04:25 set 19:00; December rise 06:47 set 16:32.
    for day, rise, set_ in ((date(2026, 6, 21), (4, 25), (19, 0)), (date(2026, 12, 22), (6, 47), (16, 32))):
        sunrise, sunset = sun_times(*TOKYO, day)
        for found, (hour, minute) in ((sunrise, rise), (sunset, set_)):
            expected = datetime(day.year, day.month, day.day, hour, minute, tzinfo=JST)
            assert abs(found - expected) < timedelta(minutes=2), (found, expected)


def test_the_night_window_is_the_current_night_or_the_coming_one() -> None:
    before_dawn = night_window(*TOKYO, datetime(2026, 12, 3, 3, 0, tzinfo=JST))
    assert (before_dawn.sunset.date(), before_dawn.sunrise.date()) == (date(2026, 12, 2), date(2026, 12, 3))
    midday = night_window(*TOKYO, datetime(2026, 12, 3, 12, 0, tzinfo=JST))
    assert (midday.sunset.date(), midday.sunrise.date()) == (date(2026, 12, 3), date(2026, 12, 4))
    assert not midday.contains(datetime(2026, 12, 3, 12, 0, tzinfo=JST))
    assert midday.contains(datetime(2026, 12, 4, 0, 0, tzinfo=JST))  # across midnight
    # Naha sets later than Sapporo on the same day (west and south).
    assert sun_times(26.21, 127.68, date(2026, 12, 3))[1] > sun_times(43.06, 141.35, date(2026, 12, 3))[1]


def test_where_the_sun_does_not_set_the_civil_guess_stands_in() -> None:
    sunrise, sunset = sun_times(80.0, 15.0, date(2026, 6, 21))
    assert (sunrise.hour, sunset.hour) == (6, 18)
