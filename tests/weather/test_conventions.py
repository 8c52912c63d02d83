"""The period, azimuth and physical-limit conventions, with numbers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pms_common.timeutil import JST
from pms_weather import conventions
from pms_weather.conventions import Checked, check_irradiance, open_meteo_azimuth, pvlib_azimuth

TOKYO = (35.68, 139.77)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 6, 1, hour, minute, tzinfo=JST)


@pytest.mark.parametrize(
    ("pvlib", "open_meteo"),
    [(180.0, 0.0), (90.0, -90.0), (270.0, 90.0), (0.0, 180.0), (135.0, -45.0), (225.0, 45.0), (359.0, 179.0)],
)
def test_azimuth_south_is_180_in_pvlib_and_0_in_open_meteo(pvlib: float, open_meteo: float) -> None:
    assert open_meteo_azimuth(pvlib) == open_meteo
    assert pvlib_azimuth(open_meteo) == pvlib


def test_an_hourly_value_is_the_mean_of_the_preceding_hour_and_fills_its_two_slots() -> None:
    # Open-Meteo stamps the 12:00–13:00 mean at 13:00: it belongs to the slots ending 12:30 and 13:00,
    # never to the slot ending 13:30.
    slots = conventions.slots_from_hourly({at(12): 400.0, at(13): 600.0, at(14): None})
    assert slots == {at(11, 30): 400.0, at(12): 400.0, at(12, 30): 600.0, at(13): 600.0, at(13, 30): None,
                     at(14): None}


def test_quarter_hours_average_into_the_slot_they_end_in() -> None:
    quarters = {at(12, 15): 500.0, at(12, 30): 700.0, at(12, 45): 650.0, at(13): None}
    assert conventions.slots_from_quarter_hours(quarters) == {at(12, 30): 600.0, at(13): None}


def test_instantaneous_values_are_interpolated_at_the_slot_end() -> None:
    temperature = {at(12): 20.0, at(13): 22.0, at(14): None}
    assert conventions.interpolate_at(temperature, at(12, 30)) == 21.0
    assert conventions.interpolate_at(temperature, at(13)) == 22.0
    assert conventions.interpolate_at(temperature, at(13, 30)) is None  # no guess across a gap
    assert conventions.interpolate_at(temperature, at(11, 30)) is None


def test_physical_limits_clamp_noise_and_drop_glitches() -> None:
    assert check_irradiance(-3.0, 1000.0) == Checked(0.0, "clamped")
    assert check_irradiance(-966.0, 1000.0) == Checked(None, "dropped")  # a published tilted-irradiance glitch
    assert check_irradiance(1500.0, 1000.0) == Checked(1000.0, "clamped")
    assert check_irradiance(999.0, 1000.0) == Checked(999.0, None)
    assert check_irradiance(None, 1000.0) == Checked(None, None)


def test_the_ghi_limit_follows_the_sun() -> None:
    # June noon in Tokyo: the sun ~78° high, extraterrestrial ~1321 W/m² → 1.5 × 1321 × 0.98 + 5 ≈ 1944.
    noon = conventions.ghi_limit_w_m2(at(12), timedelta(hours=1), *TOKYO)
    assert 1900 < noon < 1990
    assert conventions.ghi_limit_w_m2(at(1), timedelta(hours=1), *TOKYO) == 5.0  # night: nothing but rounding
    assert 1310 < conventions.extraterrestrial_normal_w_m2(at(12)) < 1330  # June: the Earth far from the sun
