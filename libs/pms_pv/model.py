"""Irradiance → expected AC energy, with pvlib (the PVWatts chain pvlib's ModelChain.with_pvwatts runs).

Per interval (named by its END, as the meter names its 30-minute slots):
1. solar position at the interval's MIDPOINT (the irradiance is the interval's mean, so the sun's
   position in its middle is the one that goes with it);
2. GHI/DNI/DHI: measured when the weather gives all three; GHI alone is split with the Erbs model;
   no measurement → Ineichen clear sky with the climatological Linke turbidity at the location;
3. transposition to the plane of array: Perez sky model (pvlib.irradiance.get_total_irradiance,
   albedo 0.25), the angle-of-incidence loss on the beam with the physical IAM model;
4. cell temperature: SAPM, open-rack glass/polymer; air 20 °C and wind 1 m/s when not measured;
5. PVWatts DC with the temperature coefficient, one system loss %, PVWatts inverter (nominal
   efficiency 0.96) clipping at the AC limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pvlib

from pms_pv.params import PvParameters

SLOT = timedelta(minutes=30)
CLEAR_SKY = "clear_sky"
ETA_INV_NOM = 0.96  # pvlib's PVWatts inverter default; its pdc0 is set so that AC clips at the AC limit
ALBEDO = 0.25
SAPM_RACK = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["open_rack_glass_polymer"]
DEFAULT_TEMP_AIR_C = 20.0
DEFAULT_WIND_M_S = 1.0
# A weather value stands for the interval ending at its time; one older than this does not cover a slot.
MAX_WEATHER_STEP = timedelta(hours=1)


@dataclass(frozen=True)
class IrradianceSample:
    """The mean irradiance (W/m²) over the interval ending at `period_end`, from a weather provider."""

    period_end: datetime
    ghi: float
    dni: float | None = None
    dhi: float | None = None
    temp_air_c: float | None = None
    source: str = "weather"


@dataclass(frozen=True)
class SlotExpectation:
    """One 30-minute slot: expected AC energy (calibration applied) and the reference figures of the
    performance ratios: plane-of-array insolation and the temperature-corrected STC energy."""

    slot_end: datetime
    expected_kwh: float
    poa_kwh_m2: float
    stc_kwh: float  # DC capacity × POA insolation / 1 kW/m² (IEC 61724-1 reference yield × P0)
    stc_temp_kwh: float  # the same × (1 + γ (T_cell − 25 °C)): the temperature-corrected reference
    source: str


def simulate(latitude: float, longitude: float, params: PvParameters, period_ends: pd.DatetimeIndex,
             period: timedelta, *, ghi: Any, dni: Any = None, dhi: Any = None, temp_air: Any = None,
             wind_speed: Any = None) -> pd.DataFrame:
    """The PVWatts chain over intervals ending at `period_ends` (tz-aware) of length `period`.

    Irradiance arrays are interval means; ghi=None means clear sky. dni/dhi None (or NaN entries)
    are derived from GHI with Erbs. Columns: ghi, poa_global, temp_cell, ac_w (before calibration)."""
    mid = period_ends - pd.Timedelta(period) / 2
    location = pvlib.location.Location(latitude, longitude, tz=str(period_ends.tz))
    sun = location.get_solarposition(mid)
    frame = pd.DataFrame(index=mid)
    if ghi is None:
        sky = location.get_clearsky(mid, model="ineichen", solar_position=sun)
        frame["ghi"], frame["dni"], frame["dhi"] = sky["ghi"].to_numpy(), sky["dni"].to_numpy(), sky["dhi"].to_numpy()
    else:
        frame["ghi"] = pd.Series(ghi, index=mid, dtype=float).clip(lower=0.0)
        split = pvlib.irradiance.erbs(frame["ghi"], sun["zenith"], mid)
        frame["dni"] = _measured_or(dni, split["dni"], mid)
        frame["dhi"] = _measured_or(dhi, split["dhi"], mid)
    temp = _measured_or(temp_air, pd.Series(DEFAULT_TEMP_AIR_C, index=mid), mid)
    wind = _measured_or(wind_speed, pd.Series(DEFAULT_WIND_M_S, index=mid), mid)
    dni_extra = pvlib.irradiance.get_extra_radiation(mid)
    airmass = location.get_airmass(mid, solar_position=sun, model="kastenyoung1989")["airmass_relative"]
    poa = pvlib.irradiance.get_total_irradiance(
        params.tilt_deg, params.azimuth_deg, sun["apparent_zenith"], sun["azimuth"], frame["dni"], frame["ghi"],
        frame["dhi"], dni_extra=dni_extra, airmass=airmass, albedo=ALBEDO, model="perez")
    aoi = pvlib.irradiance.aoi(params.tilt_deg, params.azimuth_deg, sun["apparent_zenith"], sun["azimuth"])
    effective = (poa["poa_direct"] * pvlib.iam.physical(aoi) + poa["poa_diffuse"]).fillna(0.0).clip(lower=0.0)
    poa_global = poa["poa_global"].fillna(0.0).clip(lower=0.0)
    temp_cell = pvlib.temperature.sapm_cell(poa_global, temp, wind, **SAPM_RACK)
    gamma = params.gamma_pct_per_c / 100.0
    dc = pvlib.pvsystem.pvwatts_dc(effective, temp_cell, params.dc_kw * 1000.0, gamma)
    dc = dc * (1.0 - params.system_loss_pct / 100.0)
    ac = pvlib.inverter.pvwatts(dc, params.ac_kw * 1000.0 / ETA_INV_NOM, eta_inv_nom=ETA_INV_NOM)
    frame["poa_global"] = poa_global
    frame["temp_cell"] = temp_cell
    frame["ac_w"] = pd.Series(ac, index=mid).fillna(0.0).clip(lower=0.0)
    frame.index = period_ends
    return frame


def _measured_or(values: Any, fallback: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    if values is None:
        return fallback
    measured = pd.Series(values, index=index, dtype=float)
    return measured.where(measured.notna(), fallback)


def expected_slots(latitude: float, longitude: float, params: PvParameters, slot_ends: Sequence[datetime],
                   weather: Sequence[IrradianceSample]) -> list[SlotExpectation]:
    """Expected energy per 30-minute slot: each slot takes the weather interval that covers it
    (the first sample ending at or after the slot's end, within an hour), else clear sky."""
    if not slot_ends:
        return []
    ordered = sorted(weather, key=lambda w: w.period_end)
    covering: list[IrradianceSample | None] = []
    position = 0
    for end in slot_ends:
        while position < len(ordered) and ordered[position].period_end < end:
            position += 1
        sample = ordered[position] if position < len(ordered) else None
        covering.append(sample if sample is not None and sample.period_end - end < MAX_WEATHER_STEP else None)
    index = pd.DatetimeIndex(pd.to_datetime(list(slot_ends), utc=True)).tz_convert("Asia/Tokyo")
    # Each run costs ~35 ms a day of slots (bench/expected_yield.py): only the ones needed.
    clear = simulate(latitude, longitude, params, index, SLOT, ghi=None) if None in covering else None
    if any(c is not None for c in covering):
        nan = float("nan")
        measured = simulate(
            latitude, longitude, params, index, SLOT,
            ghi=[c.ghi if c else 0.0 for c in covering],
            dni=[c.dni if c and c.dni is not None else nan for c in covering],
            dhi=[c.dhi if c and c.dhi is not None else nan for c in covering],
            temp_air=[c.temp_air_c if c and c.temp_air_c is not None else nan for c in covering])
    else:
        assert clear is not None
        measured = clear
    hours = SLOT.total_seconds() / 3600.0
    gamma = params.gamma_pct_per_c / 100.0
    out = []
    for i, end in enumerate(slot_ends):
        sample = covering[i]
        row = measured.iloc[i] if sample is not None or clear is None else clear.iloc[i]
        poa_kwh_m2 = float(row["poa_global"]) * hours / 1000.0
        stc = params.dc_kw * poa_kwh_m2
        out.append(SlotExpectation(
            slot_end=end, expected_kwh=round(float(row["ac_w"]) * hours / 1000.0 * params.calibration, 6),
            poa_kwh_m2=round(poa_kwh_m2, 6), stc_kwh=round(stc, 6),
            stc_temp_kwh=round(stc * (1.0 + gamma * (float(row["temp_cell"]) - 25.0)), 6),
            source=sample.source if sample is not None else CLEAR_SKY))
    return out
