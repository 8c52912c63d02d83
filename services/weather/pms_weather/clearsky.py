"""An offline clear-sky irradiance estimate: solar position (NOAA/Spencer approximations) and the
Haurwitz clear-sky model. Good to a few per cent of measured clear-sky GHI, and needs no network.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pms_common.timeutil import require_aware


def solar_zenith_cos(moment: datetime, latitude: float, longitude: float) -> float:
    """cos of the solar zenith angle at a place and a moment."""
    utc = require_aware(moment).astimezone(UTC)
    day_of_year = utc.timetuple().tm_yday
    hours = utc.hour + utc.minute / 60 + utc.second / 3600
    gamma = 2 * math.pi / 365 * (day_of_year - 1 + (hours - 12) / 24)
    declination = (
        0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma)
    )
    equation_of_time_min = 229.18 * (
        0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma)
    )
    solar_time_min = hours * 60 + equation_of_time_min + 4 * longitude
    hour_angle = math.radians(solar_time_min / 4 - 180)
    lat = math.radians(latitude)
    return math.sin(lat) * math.sin(declination) + math.cos(lat) * math.cos(declination) * math.cos(hour_angle)


def clear_sky_ghi(moment: datetime, latitude: float, longitude: float) -> float:
    """Global horizontal irradiance under a clear sky (W/m²), Haurwitz (1945); 0 at night."""
    cos_zenith = solar_zenith_cos(moment, latitude, longitude)
    if cos_zenith <= 0.01:
        return 0.0
    return round(1098.0 * cos_zenith * math.exp(-0.059 / cos_zenith), 1)
