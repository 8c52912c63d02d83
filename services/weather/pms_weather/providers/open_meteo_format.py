"""Open-Meteo's forecast API as data: the query for a batch of locations, and its JSON answer turned
into 30-minute slots (sans-IO: no HTTP here, see `open_meteo`).

The answer is one object per location (a JSON list when several were asked for, in the order asked),
each with `hourly` and optionally `minutely_15`: a `time` array (unix seconds with
`timeformat=unixtime`) and one array per variable, `null` where the model has no value. Radiation
is the mean over the period ENDING at `time` (see `pms_weather.conventions`); temperature and cloud
cover are instantaneous; the weather code is the hour's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pms_common import timeutil
from pms_common.messages import Weather
from pms_weather import conventions
from pms_weather.providers.base import Location

HOURLY = ("temperature_2m", "cloud_cover", "weather_code", "shortwave_radiation", "direct_normal_irradiance",
          "diffuse_radiation", "global_tilted_irradiance")
QUARTER_HOURLY = ("shortwave_radiation", "direct_normal_irradiance", "diffuse_radiation", "global_tilted_irradiance")
PAST_DAYS, FORECAST_DAYS = 1, 2  # yesterday, today and tomorrow (JST): the slot ending 24:00 is stamped tomorrow
# Our field ← the provider's radiation variable.
RADIATION = {"ghi_w_m2": "shortwave_radiation", "dni_w_m2": "direct_normal_irradiance",
             "dhi_w_m2": "diffuse_radiation", "gti_w_m2": "global_tilted_irradiance"}

CORRECTED = Counter("pms_weather_values_corrected_total",
                    "Provider values outside physical limits, clamped to them or dropped", ["variable", "action"])
WITHOUT_GHI = Counter("pms_weather_slots_without_ghi_total",
                      "Slots the provider gave no usable GHI for (not published)")


class ProviderFormatError(ValueError):
    """The provider's answer is not in the documented format."""


@dataclass(frozen=True)
class Query:
    tilt_deg: float
    azimuth_pvlib_deg: float
    model: str
    minutely_15: bool
    api_key: str | None = None

    @property
    def variables(self) -> int:
        return len(HOURLY) + (len(QUARTER_HOURLY) if self.minutely_15 else 0)

    def calls_for(self, locations: int) -> int:
        """What a request costs against the daily budget, counted as Open-Meteo counts: each location
        is a call, and more than 10 variables or 14 days make it weigh more (rounded up here)."""
        weight = max(1.0, self.variables / 10) * max(1.0, (PAST_DAYS + FORECAST_DAYS) / 14)
        return math.ceil(locations * weight)

    def params(self, locations: Sequence[Location]) -> dict[str, str]:
        params = {
            "latitude": ",".join(f"{loc.latitude:.4f}" for loc in locations),
            "longitude": ",".join(f"{loc.longitude:.4f}" for loc in locations),
            "hourly": ",".join(HOURLY),
            "tilt": f"{self.tilt_deg:g}",
            "azimuth": f"{conventions.open_meteo_azimuth(self.azimuth_pvlib_deg):g}",
            "timezone": "Asia/Tokyo",
            "timeformat": "unixtime",
            "past_days": str(PAST_DAYS),
            "forecast_days": str(FORECAST_DAYS),
            "models": self.model,
        }
        if self.minutely_15:
            params["minutely_15"] = ",".join(QUARTER_HOURLY)
        if self.api_key:
            params["apikey"] = self.api_key
        return params


Column = list[float | None]


class _Block(BaseModel):
    model_config = ConfigDict(extra="allow")
    time: list[int]

    def column(self, name: str) -> Column:
        values = (self.model_extra or {}).get(name)
        if values is None:
            return [None] * len(self.time)
        if not isinstance(values, list) or len(values) != len(self.time):
            raise ProviderFormatError(f"the provider's {name} is not a list as long as its time list")
        try:
            return [None if v is None else float(v) for v in values]
        except (TypeError, ValueError) as exc:
            raise ProviderFormatError(f"the provider's {name} holds a value that is not a number") from exc


class LocationAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    latitude: float
    longitude: float
    hourly: _Block | None = None
    minutely_15: _Block | None = Field(default=None)


def parse_answer(body: object, expected: int) -> list[LocationAnswer]:
    """The per-location answers of one request, in the order asked."""
    items = body if isinstance(body, list) else [body]
    if len(items) != expected:
        raise ProviderFormatError(f"the provider answered {len(items)} locations for {expected} asked")
    try:
        return [LocationAnswer.model_validate(item) for item in items]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ProviderFormatError(
            f"the provider's answer is not in Open-Meteo's format: {first['loc']}: {first['msg']}"
        ) from exc


def _by_time(block: _Block, name: str) -> dict[datetime, float | None]:
    return dict(zip((timeutil.from_epoch(t) for t in block.time), block.column(name), strict=True))


def slots_of(answer: LocationAnswer, location: Location, slot_ends: Sequence[datetime], *, source: str,
             model: str, stale: bool) -> list[Weather]:
    """The location's Weather per slot end (those the provider has a GHI for), limits applied."""
    if answer.hourly is None:
        raise ProviderFormatError("the provider's answer has no hourly block")
    radiation = {
        field: conventions.slots_from_hourly(_by_time(answer.hourly, name)) for field, name in RADIATION.items()
    }
    if answer.minutely_15 is not None:
        for field, name in RADIATION.items():
            finer = conventions.slots_from_quarter_hours(_by_time(answer.minutely_15, name))
            radiation[field].update({t: v for t, v in finer.items() if v is not None})
    temperature = _by_time(answer.hourly, "temperature_2m")
    cloud = _by_time(answer.hourly, "cloud_cover")
    code = _by_time(answer.hourly, "weather_code")
    found = []
    for end in slot_ends:
        hour_end = timeutil.from_epoch(-(-timeutil.to_epoch(end) // 3600) * 3600)
        checked = _checked_radiation({field: radiation[field].get(end) for field in RADIATION}, hour_end, location)
        ghi = checked["ghi_w_m2"]
        if ghi is None:
            WITHOUT_GHI.inc()
            continue
        cover = conventions.interpolate_at(cloud, end)
        weather_code = code.get(hour_end)
        temp = conventions.interpolate_at(temperature, end)
        found.append(Weather(
            service_code=location.service_code, observed_at=end, ghi_w_m2=ghi,
            temperature_c=None if temp is None else round(temp, 2), source=source, model=model, stale=stale,
            dni_w_m2=checked["dni_w_m2"], dhi_w_m2=checked["dhi_w_m2"], gti_w_m2=checked["gti_w_m2"],
            cloud_cover_pct=None if cover is None else round(min(100.0, max(0.0, cover)), 1),
            weather_code=None if weather_code is None or not 0 <= weather_code <= 99 else int(weather_code),
        ))
    return found


def _checked_radiation(values: dict[str, float | None], hour_end: datetime,
                       location: Location) -> dict[str, float | None]:
    # Limits over the whole hour the value came from: an hourly mean fills both of its slots, and the
    # sun of the hour's later half (at sunrise) must not make the earlier slot's value a glitch.
    normal = conventions.extraterrestrial_normal_w_m2(hour_end) + 5.0
    ghi_limit = conventions.ghi_limit_w_m2(hour_end, timedelta(hours=1), location.latitude, location.longitude)
    limits = {"ghi_w_m2": ghi_limit, "dhi_w_m2": ghi_limit, "dni_w_m2": normal,
              "gti_w_m2": conventions.GHI_LIMIT_FACTOR * normal}
    checked: dict[str, float | None] = {}
    for field, value in values.items():
        result = conventions.check_irradiance(value, limits[field])
        if result.action is not None:
            CORRECTED.labels(RADIATION[field], result.action).inc()
        checked[field] = None if result.value is None else round(result.value, 1)
    return checked
