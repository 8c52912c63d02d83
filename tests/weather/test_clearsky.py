from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pms_common.timeutil import JST
from pms_weather.clearsky import clear_sky_ghi, solar_zenith_cos

TOKYO = (35.68, 139.77)


def test_night_is_zero() -> None:
    assert clear_sky_ghi(datetime(2026, 6, 21, 0, 0, tzinfo=JST), *TOKYO) == 0.0
    assert clear_sky_ghi(datetime(2026, 12, 21, 18, 0, tzinfo=JST), *TOKYO) == 0.0
    assert solar_zenith_cos(datetime(2026, 6, 21, 0, 0, tzinfo=JST), *TOKYO) < 0


def test_tokyo_noon_near_the_june_solstice() -> None:
    ghi = clear_sky_ghi(datetime(2026, 6, 21, 11, 40, tzinfo=JST), *TOKYO)
    assert 850 <= ghi <= 1050


def test_december_noon_is_lower_than_june_noon() -> None:
    june = clear_sky_ghi(datetime(2026, 6, 21, 11, 40, tzinfo=JST), *TOKYO)
    december = clear_sky_ghi(datetime(2026, 12, 21, 11, 40, tzinfo=JST), *TOKYO)
    assert 0 < december < june
    assert december < 700


def test_sun_elevation_at_june_noon() -> None:
    # Tokyo at the June solstice: the sun stands about 78° high, cos(zenith) ≈ 0.98.
    assert solar_zenith_cos(datetime(2026, 6, 21, 11, 40, tzinfo=JST), *TOKYO) == pytest.approx(0.98, abs=0.015)


def test_never_negative_over_a_year() -> None:
    moment = datetime(2026, 1, 1, 0, 0, tzinfo=JST)
    values = []
    while moment.year == 2026:
        values.append(clear_sky_ghi(moment, *TOKYO))
        moment += timedelta(hours=5, minutes=7)
    assert min(values) == 0.0
    assert all(v >= 0 for v in values)
    assert max(values) < 1098


def test_morning_rises_to_noon() -> None:
    day = datetime(2026, 6, 1, tzinfo=JST)
    series = [clear_sky_ghi(day + timedelta(hours=h), *TOKYO) for h in (5, 7, 9, 11)]
    assert series == sorted(series)
    assert series[0] < 100 < series[-1]


def test_refuses_naive() -> None:
    with pytest.raises(ValueError):
        clear_sky_ghi(datetime(2026, 6, 21, 12, 0), *TOKYO)
