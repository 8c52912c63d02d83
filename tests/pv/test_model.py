"""pms_pv against pvlib's own ModelChain, against published Japanese yields, and its calibration."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pvlib
import pytest

from pms_common import timeutil
from pms_pv import default_parameters, expected_slots
from pms_pv.model import IrradianceSample, simulate
from pms_pv.params import PvParameters
from pms_pv.performance import DayFigures, aggregate, calibration_factor

TOKYO = (35.68, 139.77)
PARAMS = PvParameters(dc_kw=49.5 * 1.2, ac_kw=40.0, tilt_deg=20.0, azimuth_deg=180.0, system_loss_pct=14.0,
                      gamma_pct_per_c=-0.4)


def synthetic_year() -> pd.DataFrame:
    """A year of hourly (period-ending) weather at Tokyo: clear sky × a deterministic cloud factor,
    split into DNI/DHI with Erbs, temperature and wind from smooth seasonal/daily curves."""
    ends = pd.date_range("2025-01-01 01:00", "2026-01-01 00:00", freq="1h", tz="Asia/Tokyo")
    mid = ends - pd.Timedelta(minutes=30)
    location = pvlib.location.Location(*TOKYO, tz="Asia/Tokyo")
    sun = location.get_solarposition(mid)
    clear = location.get_clearsky(mid, solar_position=sun)
    hours = np.arange(len(ends))
    cloud = 0.55 + 0.45 * np.abs(np.sin(hours * 0.37) * np.cos(hours * 0.011))  # 0.1..1.0, no randomness
    ghi = clear["ghi"].to_numpy() * cloud
    split = pvlib.irradiance.erbs(ghi, sun["zenith"], mid)
    day_of_year = mid.day_of_year.to_numpy()
    temp = 16 - 10 * np.cos(2 * np.pi * (day_of_year - 20) / 365) + 4 * np.sin(2 * np.pi * (mid.hour.to_numpy() - 9) / 24)
    wind = 1.5 + np.abs(np.sin(hours * 0.05))
    return pd.DataFrame({"ghi": ghi, "dni": split["dni"].to_numpy(), "dhi": split["dhi"].to_numpy(),
                         "temp_air": temp, "wind_speed": wind}, index=ends)


def modelchain_ac(weather: pd.DataFrame) -> pd.Series:
    """pvlib's ModelChain.with_pvwatts on the same plant and weather, labelled at interval midpoints."""
    inverter_pdc0 = PARAMS.ac_kw * 1000 / 0.96
    system = pvlib.pvsystem.PVSystem(
        surface_tilt=PARAMS.tilt_deg, surface_azimuth=PARAMS.azimuth_deg, albedo=0.25,
        module_parameters={"pdc0": PARAMS.dc_kw * 1000, "gamma_pdc": PARAMS.gamma_pct_per_c / 100},
        inverter_parameters={"pdc0": inverter_pdc0},
        temperature_model_parameters=pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"],
        # One loss of 14 %, the rest zero: pvwatts_losses then totals exactly 14 %.
        losses_parameters={"soiling": PARAMS.system_loss_pct, "shading": 0, "snow": 0, "mismatch": 0, "wiring": 0,
                           "connections": 0, "lid": 0, "nameplate_rating": 0, "age": 0, "availability": 0},
    )
    location = pvlib.location.Location(*TOKYO, tz="Asia/Tokyo")
    chain = pvlib.modelchain.ModelChain.with_pvwatts(system, location)
    shifted = weather.copy()
    shifted.index = weather.index - pd.Timedelta(minutes=30)
    chain.run_model(shifted)
    ac = chain.results.ac.clip(lower=0).fillna(0)
    ac.index = weather.index
    return ac


def test_agrees_with_pvlib_modelchain_within_one_percent_per_day_for_a_year() -> None:
    weather = synthetic_year()
    ours = simulate(*TOKYO, PARAMS, weather.index, timedelta(hours=1), ghi=weather["ghi"].to_numpy(),
                    dni=weather["dni"].to_numpy(), dhi=weather["dhi"].to_numpy(),
                    temp_air=weather["temp_air"].to_numpy(), wind_speed=weather["wind_speed"].to_numpy())["ac_w"]
    theirs = modelchain_ac(weather)
    by_day = lambda s: s.groupby((s.index - pd.Timedelta(minutes=1)).date).sum() / 1000  # noqa: E731
    ours_day, theirs_day = by_day(ours), by_day(theirs)
    assert len(ours_day) == 365
    worst = float(((ours_day - theirs_day).abs() / theirs_day).max())
    print(f"worst day {worst:.3%}, year {ours_day.sum():.0f} kWh vs {theirs_day.sum():.0f} kWh")
    assert worst < 0.01, f"worst day differs by {worst:.2%}"
    assert 60_000 < ours_day.sum() < 90_000  # kWh a year from 59.4 kW under this synthetic sky: not trivial
    # Clipping at the AC limit happened (59.4 kW of panels on 40 kW) and both models clipped alike.
    assert ours.max() == pytest.approx(40_000, rel=1e-6)
    assert theirs.max() == pytest.approx(40_000, rel=1e-6)


def test_clear_spring_day_in_tokyo_is_in_the_range_published_for_japan() -> None:
    """Wikipedia, "Solar power in Japan" (https://en.wikipedia.org/wiki/Solar_power_in_Japan): "Japan
    has an insolation of about 4.3 to 4.8 kWh/(m²·day)" — an all-weather AVERAGE. A clear spring day
    must exceed that average on the horizontal, and its yield per kW must exceed the average yield it
    implies at a typical performance ratio of 0.8 (4.8 × 0.8 ≈ 3.8 kWh/kW), while staying under the
    physical ceiling of a 20°-tilted south plane (≈ 8 kWh/m² in April × 0.86 losses ≈ 7 kWh/kW)."""
    params = default_parameters(1.0)
    day = date(2026, 4, 20)
    slots = [timeutil.day_start(day) + timeutil.SLOT * (i + 1) for i in range(48)]
    expected = expected_slots(*TOKYO, params, slots, [])
    per_kw = sum(s.expected_kwh for s in expected)
    poa = sum(s.poa_kwh_m2 for s in expected)
    assert 5.0 <= per_kw <= 7.0, per_kw
    assert poa > 4.8
    assert all(s.source == "clear_sky" for s in expected)
    # The same clear sky a whole year: above the ~1,000 kWh/kW a year Japanese plants make in all weather.
    year_ends = pd.date_range("2026-01-01 00:30", "2027-01-01 00:00", freq="30min", tz="Asia/Tokyo")
    year = simulate(*TOKYO, params, year_ends, timedelta(minutes=30), ghi=None)["ac_w"].sum() / 2 / 1000
    assert 1_300 < year < 2_200, year


def test_measured_weather_lowers_the_expectation_and_names_its_source() -> None:
    params = default_parameters(10.0)
    day = date(2026, 4, 20)
    slots = [timeutil.day_start(day) + timeutil.SLOT * (i + 1) for i in range(48)]
    clear = expected_slots(*TOKYO, params, slots, [])
    hourly = [IrradianceSample(period_end=timeutil.day_start(day) + timedelta(hours=h), ghi=200.0 if 7 <= h <= 17 else 0.0,
                               temp_air_c=18.0, source="open-meteo")
              for h in range(1, 25)]
    cloudy = expected_slots(*TOKYO, params, slots, hourly)
    assert {s.source for s in cloudy} == {"open-meteo"}
    assert 0 < sum(s.expected_kwh for s in cloudy) < 0.5 * sum(s.expected_kwh for s in clear)
    # Period-ending: the 11:00 value covers the slots ending 10:30 and 11:00 alike.
    at = {s.slot_end.hour * 60 + s.slot_end.minute: s for s in cloudy}
    assert at[10 * 60 + 30].poa_kwh_m2 == pytest.approx(at[11 * 60].poa_kwh_m2, rel=0.05)
    days = aggregate(cloudy, "day")
    assert len(days) == 1 and days[0].period_start == timeutil.day_start(day)
    assert days[0].expected_kwh == pytest.approx(sum(s.expected_kwh for s in cloudy), abs=1e-4)


def test_calibration_learns_a_thirty_percent_shading_from_clear_days() -> None:
    """A plant losing 30 % to shading: 60 days, every third overcast (sold follows the sky); its clear
    days give a factor ≈ 0.7, with and without measured weather."""
    params = default_parameters(10.0)
    days_measured, days_unmeasured = [], []
    for n in range(60):
        day = date(2026, 4, 1) + timedelta(days=n)
        slots = [timeutil.day_start(day) + timeutil.SLOT * (i + 1) for i in range(48)]
        clear = sum(s.expected_kwh for s in expected_slots(*TOKYO, params, slots, []))
        sky = 0.3 if n % 3 == 0 else 1.0
        generated = clear * sky * 0.7 * (1 + 0.02 * np.sin(n))  # shading, and a little day-to-day noise
        days_measured.append(DayFigures(day, clear * sky, clear, generated, measured_weather=True))
        days_unmeasured.append(DayFigures(day, clear, clear, generated, measured_weather=False))
    assert calibration_factor(days_measured) == pytest.approx(0.7, abs=0.02)
    assert calibration_factor(days_unmeasured) == pytest.approx(0.7, abs=0.03)
    # Bounded, and silent with too little to learn from.
    assert calibration_factor([DayFigures(d.day, d.expected_kwh, d.clear_sky_kwh, 0.1 * (d.sold_kwh or 0), True)
                               for d in days_measured]) == 0.5
    assert calibration_factor(days_measured[:2]) is None


def test_calibration_is_applied_to_expected_values() -> None:
    slots = [datetime(2026, 4, 20, 12, 0, tzinfo=timeutil.JST)]
    plain = expected_slots(*TOKYO, default_parameters(10.0), slots, [])[0].expected_kwh
    shaded = PvParameters(**{**default_parameters(10.0).__dict__, "calibration": 0.7})
    assert expected_slots(*TOKYO, shaded, slots, [])[0].expected_kwh == pytest.approx(plain * 0.7, rel=1e-4)
