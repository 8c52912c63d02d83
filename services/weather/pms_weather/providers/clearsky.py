"""The offline provider: the Haurwitz clear-sky model, as 30-minute slot means."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pms_common import timeutil
from pms_common.messages import Weather
from pms_weather.clearsky import clear_sky_ghi
from pms_weather.conventions import SLOT
from pms_weather.providers.base import Fetched, Location

SOURCE = "clear-sky"
MODEL = "haurwitz"
_SAMPLES = 6  # per slot, at the middle of each 5 minutes


def slot_ends(start: datetime, end: datetime) -> list[datetime]:
    """The 30-minute slot ends in (start, end], in JST."""
    slot_s = int(SLOT.total_seconds())
    first = (timeutil.to_epoch(start) // slot_s + 1) * slot_s
    last = timeutil.to_epoch(end)
    return [timeutil.from_epoch(t) for t in range(first, last + 1, slot_s)]


def clear_sky_slot(service_code: str, slot_end: datetime, latitude: float, longitude: float,
                   *, stale: bool | None = None) -> Weather:
    """The slot's mean clear-sky GHI (no temperature: the model has none)."""
    step = SLOT / _SAMPLES
    ghi = sum(
        clear_sky_ghi(slot_end - SLOT + step * (i + 0.5), latitude, longitude) for i in range(_SAMPLES)
    ) / _SAMPLES
    return Weather(service_code=service_code, observed_at=slot_end, ghi_w_m2=round(ghi, 1), source=SOURCE,
                   model=MODEL, stale=stale)


class ClearSkyProvider:
    name = SOURCE

    def fetch(self, locations: Sequence[Location], start: datetime, end: datetime) -> Fetched:
        ends = slot_ends(start, end)
        return Fetched(
            {loc.service_code: [clear_sky_slot(loc.service_code, t, loc.latitude, loc.longitude) for t in ends]
             for loc in locations}
        )

    def close(self) -> None:
        pass


def slot_end_at_or_after(moment: datetime) -> datetime:
    """The end of the slot a moment falls in (a moment on a boundary ends its slot)."""
    slot_s = int(SLOT.total_seconds())
    epoch = timeutil.to_epoch(moment)
    return timeutil.from_epoch(-(-epoch // slot_s) * slot_s)
