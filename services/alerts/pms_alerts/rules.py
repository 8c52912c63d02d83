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

from pms_registry.alert_defaults import DEFAULT_RULES
from pms_registry.alert_params import KINDS, PARAMS, validate_params
from pms_registry.records import AlertRule

SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}
SCOPE_RANK = {"plant": 0, "tag": 1, "customer": 2, "global": 3}


# The shipped global rules are pms_registry.alert_defaults.DEFAULT_RULES (the registry seeds them):
# kind -> (severity, raise_for_s, clear_for_s, params); tests check each validates here.
__all__ = ["DEFAULT_RULES", "KINDS", "effective_rule", "effective_rules", "global_rule", "validate_params"]
# Kinds that only log news (one info event each): no episode, no hysteresis.
INFO_KINDS = frozenset({"register_anomaly", "billing_start_decided", "meter_history_conflict"})
# What an offline gateway explains: these kinds of its plant neither go pending nor fire meanwhile.
INHIBITED_BY_GATEWAY_OFFLINE = frozenset({"meter_unreachable", "no_generation", "data_gap", "yield_below_expected"})


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
