"""Models of the series endpoints (power, energy, peaks, price, weather) and their queries."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pms_api.models import CSV_CONTENT, FIRST_DAY, LAST_DAY

# How many JST days one request may span, per resolution: bounded work per request.
MAX_DAYS = {"power": 31, "30min": 31, "hour": 93, "day": 1830, "month": 36600, "weather": 93, "peaks": 1830}
_ALSO_CSV: dict[str, Any] = {"content": CSV_CONTENT}  # flask-openapi3 adds it to the 200 answer


class SeriesQuery(BaseModel):
    """A JST day range (both ends included) and the answer's format."""

    start: date | None = Field(default=None, ge=FIRST_DAY, le=LAST_DAY,
                               description="first JST day (default depends on the series)")
    end: date | None = Field(default=None, ge=FIRST_DAY, le=LAST_DAY, description="last JST day, included")
    format: Literal["json", "csv"] = "json"
    encoding: Literal["utf-8", "shift_jis"] = Field(
        default="utf-8", description="CSV only: UTF-8 with BOM (default) or Shift_JIS (Windows-31J)")
    headers: Literal["en", "ja"] = Field(
        default="en", description="CSV only: column names as the API's field names (en) or in Japanese (ja)")

    @model_validator(mode="after")
    def _ordered(self) -> SeriesQuery:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class EnergyQuery(SeriesQuery):
    interval: Literal["30min", "hour", "day", "month"] = "hour"


class PriceQuery(SeriesQuery):
    interval: Literal["day", "month"] = "day"


class PowerPointOut(BaseModel):
    measured_at: datetime
    gateway_id: str
    sold_power_w: int = Field(description="max(0, -power_w): selling is positive")
    power_w: int = Field(description="signed meter reading (E7): negative = selling")
    current_r_a: float | None
    current_t_a: float | None


class EnergyPointOut(BaseModel):
    period_start: datetime
    period_end: datetime = Field(description="30-minute slots are named by this end, as the meter stamps them")
    sold_kwh: float | None
    bought_kwh: float | None
    slots: int = Field(description="30-minute slots with known energy in the period")
    backfilled: bool = Field(description="some slot came from the meter's history backfill")


class PeakOut(BaseModel):
    day: date
    peak_sold_w: int
    measured_at: datetime


class PriceOut(BaseModel):
    period_start: datetime
    period_end: datetime
    sold_kwh: float
    tariff_yen_per_kwh: float | None = Field(
        description="the price the period sold at (yen/kWh), from the tariff history; the average when it sold at "
                    "several (a price change or time-of-use bands), see `tariffs`; null without a price")
    amount_yen: float | None = Field(description="sold kWh × the price in force when sold; null when the plant had "
                                                 "no price")
    tariffs: str = Field(default="", description='the prices applied in the period, e.g. "16" or "16 / 14.5"')


class WeatherOut(BaseModel):
    observed_at: datetime = Field(description="the end of the period the values describe (a 30-minute slot, JST)")
    ghi_w_m2: float
    temperature_c: float | None
    source: str
    dni_w_m2: float | None = None
    dhi_w_m2: float | None = None
    gti_w_m2: float | None = Field(default=None, description="global tilted irradiance on the plane of array")
    cloud_cover_pct: float | None = None
    weather_code: int | None = Field(default=None, description="WMO weather interpretation code")
    model: str | None = None
    stale: bool | None = Field(default=None, description="true when older data stood in for an unreachable provider")


class Series(BaseModel):
    service_code: str
    start: date
    end: date


class PowerSeries(Series):
    model_config = ConfigDict(openapi_extra=_ALSO_CSV)  # type: ignore[typeddict-unknown-key]
    items: list[PowerPointOut]


class EnergySeries(Series):
    model_config = ConfigDict(openapi_extra=_ALSO_CSV)  # type: ignore[typeddict-unknown-key]
    interval: str
    items: list[EnergyPointOut]


class PeakSeries(Series):
    model_config = ConfigDict(openapi_extra=_ALSO_CSV)  # type: ignore[typeddict-unknown-key]
    items: list[PeakOut]


class PriceSeries(Series):
    model_config = ConfigDict(openapi_extra=_ALSO_CSV)  # type: ignore[typeddict-unknown-key]
    interval: str
    total_yen: float | None
    items: list[PriceOut]


class WeatherSeries(Series):
    model_config = ConfigDict(openapi_extra=_ALSO_CSV)  # type: ignore[typeddict-unknown-key]
    items: list[WeatherOut]


def default_range(kind: str, today: date) -> tuple[date, date]:
    """Today for fine series, this month for daily ones, this year for monthly ones."""
    if kind in ("power", "30min", "hour", "weather"):
        return today, today
    if kind in ("day", "peaks"):
        first = today.replace(day=1)
        return first, (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    return today.replace(month=1, day=1), today.replace(month=12, day=31)


def requested_days(start: date | None, end: date | None, kind: str, today: date) -> tuple[date, date]:
    """The JST days a series request asks for; a missing end follows from the start (and the other way
    round), neither means the default range around today."""
    if start is not None and end is not None:
        return start, end
    if start is not None:
        return start, default_range(kind, start)[1]
    if end is not None:
        return default_range(kind, end)[0], end
    return default_range(kind, today)
