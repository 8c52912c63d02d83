"""Rule kinds, their shipped defaults, the validation of their parameters, and which rule applies.

Every kind has one global rule (shipped, not deletable) and may have more specific ones: per
customer, per gateway tag, per plant. The most specific enabled-or-not rule applies: plant > tag >
customer > global; a disabled specific rule silences the kind for its scope. When two tag rules of
one kind match one plant (its gateways carry both tags), the one of stricter severity wins
(critical > warning > info), then the lowest rule_id, so the result never depends on row order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pms_registry.alert_defaults import DEFAULT_RULES
from pms_registry.records import AlertRule

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
SCOPE_RANK = {"plant": 0, "tag": 1, "customer": 2, "global": 3}


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
# The shipped global rules are pms_registry.alert_defaults.DEFAULT_RULES (the registry seeds them):
# kind -> (severity, raise_for_s, clear_for_s, params); tests check each validates here.
__all__ = ["DEFAULT_RULES", "KINDS", "effective_rule", "effective_rules", "global_rule", "validate_params"]
# Kinds that only log news (one info event each): no episode, no hysteresis.
INFO_KINDS = frozenset({"register_anomaly", "billing_start_decided", "meter_history_conflict"})
# What an offline gateway explains: these kinds of its plant neither go pending nor fire meanwhile.
INHIBITED_BY_GATEWAY_OFFLINE = frozenset({"meter_unreachable", "no_generation", "data_gap", "yield_below_expected"})


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


def params_of(rule: AlertRule) -> dict[str, Any]:
    """The rule's parameters with defaults filled in; the defaults alone when stored ones are bad
    (a rule written before a range was narrowed must not stop the evaluation)."""
    try:
        return validate_params(rule.kind, rule.params)
    except ValueError:
        return PARAMS[rule.kind]().model_dump() if rule.kind in PARAMS else {}


class PlantScope(Protocol):
    """What the registry's plant_scopes() gives per plant."""

    @property
    def customer_id(self) -> str: ...

    @property
    def tags(self) -> frozenset[str]: ...


def _tag_order(rule: AlertRule) -> tuple[int, int]:
    return SEVERITY_RANK.get(rule.severity, 9), rule.rule_id


def effective_rule(rules: Iterable[AlertRule], service_code: str, customer_id: str | None,
                   tags: frozenset[str]) -> AlertRule | None:
    """The most specific of one kind's rules that applies to the plant (None: no rule at all)."""
    best: AlertRule | None = None
    for rule in rules:
        if rule.scope == "plant" and rule.scope_value != service_code:
            continue
        if rule.scope == "tag" and rule.scope_value not in tags:
            continue
        if rule.scope == "customer" and (customer_id is None or rule.scope_value != customer_id):
            continue
        if best is None or _more_specific(rule, best):
            best = rule
    return best


def _more_specific(rule: AlertRule, than: AlertRule) -> bool:
    if SCOPE_RANK[rule.scope] != SCOPE_RANK[than.scope]:
        return SCOPE_RANK[rule.scope] < SCOPE_RANK[than.scope]
    return _tag_order(rule) < _tag_order(than)


def effective_rules(rules: Iterable[AlertRule], scopes: Mapping[str, PlantScope]) -> dict[str, dict[str, AlertRule]]:
    """kind -> service code -> the rule that applies there, for every plant in `scopes`."""
    by_kind: dict[str, list[AlertRule]] = {}
    for rule in rules:
        by_kind.setdefault(rule.kind, []).append(rule)
    result: dict[str, dict[str, AlertRule]] = {}
    for kind, kind_rules in by_kind.items():
        chosen: dict[str, AlertRule] = {}
        for service_code, scope in scopes.items():
            applying = effective_rule(kind_rules, service_code, scope.customer_id, scope.tags)
            if applying is not None:
                chosen[service_code] = applying
        result[kind] = chosen
    return result


def global_rule(rules: Iterable[AlertRule], kind: str) -> AlertRule | None:
    """The kind's global rule: what applies to a gateway bound to no plant."""
    return min((r for r in rules if r.kind == kind and r.scope == "global"), key=lambda r: r.rule_id, default=None)
