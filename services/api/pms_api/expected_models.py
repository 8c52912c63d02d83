"""Models of the expected-yield endpoints: a plant's PV parameters, its expected series, calibration."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pms_api.models import CSV_CONTENT
from pms_api.series_models import Series, SeriesQuery

_ALSO_CSV: dict[str, Any] = {"content": CSV_CONTENT}

COMPARISON = (
    "The meter measures SOLD energy, not generation: a house behind the meter consumes part of what "
    "the panels make. Every ratio here is sold ÷ something, so for a plant with self-consumption it is "
    "a lower bound (for a full-sale plant it is the ratio itself). sold_ratio = sold ÷ expected "
    "(calibrated); pr_sold = sold ÷ (DC kW × plane-of-array kWh/m²), IEC 61724-1's performance ratio "
    "with sold energy; pr_sold_temp = the same, reference corrected to cell temperature."
)


class PvSettingsIn(BaseModel):
    """The plant's PV parameters; an absent or null field goes back to its default."""

    model_config = ConfigDict(extra="forbid")

    dc_kw: float | None = Field(default=None, gt=0, le=100_000, description="panel (DC) capacity, kW")
    ac_kw: float | None = Field(default=None, gt=0, le=100_000, description="AC limit (power conditioners), kW")
    tilt_deg: float | None = Field(default=None, ge=0, le=90, description="0 = flat, 90 = vertical")
    azimuth_deg: float | None = Field(default=None, ge=0, lt=360,
                                      description="the direction the panels face: 90 = east, 180 = south, 270 = west")
    system_loss_pct: float | None = Field(default=None, ge=0, lt=100, description="all DC losses together, %")
    gamma_pct_per_c: float | None = Field(default=None, ge=-2, le=0, description="power temperature coefficient, %/°C")

    @model_validator(mode="after")
    def _sane_ratio(self) -> PvSettingsIn:
        if self.dc_kw is not None and self.ac_kw is not None and not 0.5 <= self.dc_kw / self.ac_kw <= 3:
            raise ValueError(f"a DC capacity of {self.dc_kw} kW on an AC limit of {self.ac_kw} kW is not plausible: "
                             "the DC/AC ratio must lie between 0.5 and 3")
        return self


class PvSettingsOut(BaseModel):
    service_code: str
    dc_kw: float
    ac_kw: float
    tilt_deg: float
    azimuth_deg: float = Field(description="pvlib's convention: 180 = south")
    system_loss_pct: float
    gamma_pct_per_c: float
    defaulted: list[str] = Field(description="the parameters never entered, shown at their defaults")
    calibration_factor: float = Field(description="learned from clear days; 1 until learned")
    calibrated_at: datetime | None
    calibration_days: int | None


class CalibrationOut(BaseModel):
    service_code: str
    calibration_factor: float
    learned: bool = Field(description="false: too few clear days; the factor stays as it was")
    clear_days: int
    message: str


class ExpectedQuery(SeriesQuery):
    interval: Literal["30min", "hour", "day", "month"] = "hour"


class ExpectedPointOut(BaseModel):
    period_start: datetime
    period_end: datetime = Field(description="30-minute slots are named by this end, as the meter stamps them")
    expected_kwh: float = Field(description="expected GENERATION (AC), calibration applied")
    sold_kwh: float | None = Field(description="energy sold (meter), null when not measured")
    sold_ratio: float | None = Field(description="sold ÷ expected: a lower bound where the house consumes")
    pr_sold: float | None = Field(description="sold ÷ (DC kW × plane-of-array kWh/m²)")
    pr_sold_temp: float | None = Field(description="pr_sold with the reference corrected to cell temperature")
    source: str = Field(description="the weather provider(s), or clear_sky when no weather was measured")


class ExpectedSeries(Series):
    model_config = ConfigDict(openapi_extra=_ALSO_CSV)  # type: ignore[typeddict-unknown-key]
    interval: str
    comparison: str = Field(default=COMPARISON, description="what is compared with what")
    calibration_factor: float
    items: list[ExpectedPointOut]
