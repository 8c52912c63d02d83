"""The conventions weather providers and the PV model disagree on, each in one place.

- Period: a provider's radiation value is the MEAN over the period that ENDS at its timestamp
  (Open-Meteo: hourly = the preceding hour, minutely_15 = the preceding 15 minutes). PMS stores
  30-minute slots named by their END in JST, as the meter stamps them; so the hourly value stamped
  13:00 (12:00–13:00) fills the slots ending 12:30 and 13:00, and the 15-minute values stamped 12:15
  and 12:30 average into the slot ending 12:30.
- Azimuth: Open-Meteo's panel azimuth is 0° = south, −90° = east, 90° = west, ±180° = north; pvlib's
  (and the registry's) is 0° = north, 90° = east, 180° = south, 270° = west.
- Physical limits: no irradiance is negative, and GHI cannot exceed the extraterrestrial irradiance
  on a horizontal plane by much (1.5× allows for cloud-edge enhancement); beyond that a value is a
  glitch (published glitches include large negative tilted irradiance).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pms_weather.clearsky import solar_zenith_cos

SLOT = timedelta(minutes=30)
SOLAR_CONSTANT_W_M2 = 1361.0
GHI_LIMIT_FACTOR = 1.5
# Below this a negative irradiance is rounding around zero (clamped to 0); beyond it, a glitch (dropped).
NEGATIVE_NOISE_W_M2 = -10.0


def open_meteo_azimuth(pvlib_azimuth_deg: float) -> float:
    """A panel azimuth in pvlib's convention (180° = south) as Open-Meteo takes it (0° = south),
    in (−180°, 180°]: 180 → 0, 90 (east) → −90, 270 (west) → 90, 0 (north) → 180."""
    converted = math.fmod(pvlib_azimuth_deg - 180.0, 360.0)
    if converted <= -180.0:
        converted += 360.0
    elif converted > 180.0:
        converted -= 360.0
    return converted + 0.0  # no −0.0


def pvlib_azimuth(open_meteo_azimuth_deg: float) -> float:
    """The inverse of `open_meteo_azimuth`, in [0°, 360°)."""
    return math.fmod(open_meteo_azimuth_deg + 180.0 + 360.0, 360.0) + 0.0


def slot_ends_of_period(period_end: datetime, period: timedelta) -> list[datetime]:
    """The 30-minute slot ends a period-ending hourly value covers (an hour → two slots)."""
    if period != 2 * SLOT:
        raise ValueError(f"an hourly period is one hour, not {period}")
    return [period_end - SLOT, period_end]


def slots_from_hourly(values: Mapping[datetime, float | None]) -> dict[datetime, float | None]:
    """Period-ending hourly means → the same mean for each 30-minute slot of the hour."""
    slots: dict[datetime, float | None] = {}
    for end, value in values.items():
        for slot_end in slot_ends_of_period(end, timedelta(hours=1)):
            slots[slot_end] = value
    return slots


def slots_from_quarter_hours(values: Mapping[datetime, float | None]) -> dict[datetime, float | None]:
    """Period-ending 15-minute means → the mean of the two quarters of each 30-minute slot; a slot
    with a missing quarter has no value."""
    slots: dict[datetime, float | None] = {}
    for end, value in values.items():
        if int(end.timestamp()) % int(SLOT.total_seconds()) != 0:
            continue
        first = values.get(end - timedelta(minutes=15))
        slots[end] = None if value is None or first is None else (first + value) / 2
    return slots


def interpolate_at(samples: Mapping[datetime, float | None], moment: datetime) -> float | None:
    """An instantaneous quantity (temperature, cloud cover) at a moment between two samples."""
    if moment in samples:
        return samples[moment]
    before = max((t for t in samples if t < moment), default=None)
    after = min((t for t in samples if t > moment), default=None)
    if before is None or after is None:
        return None
    a, b = samples[before], samples[after]
    if a is None or b is None:
        return None
    share = (moment - before) / (after - before)
    return a + (b - a) * share


def extraterrestrial_normal_w_m2(moment: datetime) -> float:
    """Irradiance at the top of the atmosphere on a plane facing the sun (Spencer's eccentricity)."""
    day = moment.astimezone(UTC).timetuple().tm_yday
    gamma = 2 * math.pi * (day - 1) / 365
    return SOLAR_CONSTANT_W_M2 * (
        1.000110 + 0.034221 * math.cos(gamma) + 0.001280 * math.sin(gamma)
        + 0.000719 * math.cos(2 * gamma) + 0.000077 * math.sin(2 * gamma)
    )


def ghi_limit_w_m2(period_end: datetime, period: timedelta, latitude: float, longitude: float) -> float:
    """The highest plausible mean GHI over a period: 1.5 × the extraterrestrial irradiance on a
    horizontal plane at the period's highest sun (sampled every 5 minutes), plus 5 W/m² of rounding."""
    steps = max(1, int(period / timedelta(minutes=5)))
    highest = max(
        solar_zenith_cos(period_end - period * (i / steps), latitude, longitude) for i in range(steps + 1)
    )
    return GHI_LIMIT_FACTOR * extraterrestrial_normal_w_m2(period_end) * max(0.0, highest) + 5.0


@dataclass(frozen=True)
class Checked:
    value: float | None
    action: str | None  # None = as given; "clamped"; "dropped"


def check_irradiance(value: float | None, limit_w_m2: float) -> Checked:
    """A provider's irradiance within physical limits: slightly negative → 0 (clamped), a large
    negative (a published glitch) → no value (dropped), above the limit → the limit (clamped)."""
    if value is None or math.isnan(value):
        return Checked(None, None)
    if value < NEGATIVE_NOISE_W_M2:
        return Checked(None, "dropped")
    if value < 0:
        return Checked(0.0, "clamped")
    if value > limit_w_m2:
        return Checked(round(limit_w_m2, 1), "clamped")
    return Checked(value, None)
