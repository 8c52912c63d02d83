"""Sunset and sunrise at a place (pvlib's NREL SPA): the nights when a plant generates nothing, so an
update that restarts its gateway then puts no generation data at risk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd
import pvlib

from pms_common.timeutil import JST

# Where a plant without a position is taken to be (said in docs/software-update.md).
TOKYO = (35.6812, 139.7671)


@dataclass(frozen=True)
class NightWindow:
    sunset: datetime
    sunrise: datetime  # the next morning's

    def contains(self, at: datetime) -> bool:
        return self.sunset <= at < self.sunrise


def sun_times(latitude: float, longitude: float, day: date) -> tuple[datetime, datetime]:
    """(sunrise, sunset) on `day` (a Japanese calendar day) at the place, timezone-aware (JST).

    Where the sun does not rise or set that day (polar regions) the civil guess 06:00 / 18:00 stands in."""
    noon = pd.DatetimeIndex([datetime.combine(day, time(12), JST)])
    found = pvlib.solarposition.sun_rise_set_transit_spa(noon, latitude, longitude)
    sunrise, sunset = found["sunrise"].iloc[0], found["sunset"].iloc[0]
    if pd.isna(sunrise) or pd.isna(sunset):
        return datetime.combine(day, time(6), JST), datetime.combine(day, time(18), JST)
    # To the second: finer means nothing here (refraction alone moves them by minutes).
    return (sunrise.floor("s").to_pydatetime().astimezone(JST), sunset.floor("s").to_pydatetime().astimezone(JST))


def night_window(latitude: float, longitude: float, at: datetime) -> NightWindow:
    """The night `at` falls in; in daytime, the coming night (from this evening's sunset)."""
    day = at.astimezone(JST).date()
    sunrise_today, sunset_today = sun_times(latitude, longitude, day)
    if at < sunrise_today:
        _, sunset_yesterday = sun_times(latitude, longitude, day - timedelta(days=1))
        return NightWindow(sunset=sunset_yesterday, sunrise=sunrise_today)
    sunrise_tomorrow, _ = sun_times(latitude, longitude, day + timedelta(days=1))
    return NightWindow(sunset=sunset_today, sunrise=sunrise_tomorrow)
