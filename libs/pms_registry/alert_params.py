"""The parameters of each alert rule kind: one pydantic model per kind, unknown keys refused.

Shared by the alerts service (which reads rules) and the API and console (which write them), so a
rule is checked by the same ranges wherever it is edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)
    # Raises within an hour beyond which an episode is held firing and marked flapping.
    flap_max: int = Field(default=4, ge=1, le=100)


class GatewayOfflineParams(_Params):
    daylight_only: bool = False  # raise only between local sunrise and sunset


class MeterUnreachableParams(_Params):
    silent_s: int = Field(default=600, ge=60, le=86_400)


class NoGenerationParams(_Params):
    irradiance_w_m2: float = Field(default=350, ge=50, le=1500)
    sold_w_max: float = Field(default=0, ge=0, le=1_000_000)


class YieldBelowExpectedParams(_Params):
    share: float = Field(default=0.8, gt=0, le=1)
    days: int = Field(default=3, ge=1, le=31)


class DataGapParams(_Params):
    window_h: float = Field(default=26, ge=1, le=24 * 14)
    lookback_days: int = Field(default=7, ge=1, le=62)


class MeterClockSkewParams(_Params):
    pass


class MeterScaleInvalidParams(_Params):
    pass


class UpdateFailedParams(_Params):
    pass


class InfoParams(_Params):
    pass


PARAMS: dict[str, type[_Params]] = {
    "gateway_offline": GatewayOfflineParams,
    "meter_unreachable": MeterUnreachableParams,
    "no_generation": NoGenerationParams,
    "yield_below_expected": YieldBelowExpectedParams,
    "data_gap": DataGapParams,
    "register_anomaly": InfoParams,
    "meter_clock_skew": MeterClockSkewParams,
    "meter_scale_invalid": MeterScaleInvalidParams,
    "update_failed": UpdateFailedParams,
    "billing_start_decided": InfoParams,
    "meter_history_conflict": InfoParams,
}
KINDS = tuple(PARAMS)


def validate_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a rule of `kind`, completed with the defaults; ValueError with one sentence
    (naming the key) for an unknown kind, an unknown key or a value out of range."""
    model = PARAMS.get(kind)
    if model is None:
        raise ValueError(f"unknown alert rule kind {kind!r}; known kinds: {', '.join(KINDS)}")
    try:
        return model.model_validate(dict(params)).model_dump()
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "params"
        if error["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            raise ValueError(f"{kind} rules take no parameter {key!r} (known: {known})") from None
        raise ValueError(f"{kind} parameter {key!r}: {error['msg']}") from None
