"""Rule kinds: shipped defaults, parameter validation in one sentence, the most specific rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from pms_alerts.rules import DEFAULT_RULES, KINDS, effective_rule, effective_rules, validate_params
from pms_common.timeutil import JST
from pms_registry.records import AlertRule

T = datetime(2026, 6, 1, tzinfo=JST)


def rule(rule_id: int, scope: Any, value: str | None, severity: Any = "warning", kind: str = "no_generation",
         enabled: bool = True) -> AlertRule:
    return AlertRule(rule_id=rule_id, kind=kind, scope=scope, scope_value=value, enabled=enabled, severity=severity,
                     raise_for_s=0, clear_for_s=0, params={}, updated_at=T, updated_by=None)


def test_every_kind_has_valid_shipped_defaults() -> None:
    assert set(DEFAULT_RULES) == set(KINDS)
    for kind, (severity, raise_for_s, clear_for_s, params) in DEFAULT_RULES.items():
        assert validate_params(kind, params)["flap_max"] == 4
        assert severity in ("critical", "warning", "info") and raise_for_s >= 0 and clear_for_s >= 0


def test_params_are_completed_with_defaults() -> None:
    assert validate_params("no_generation", {"irradiance_w_m2": 400}) == {
        "flap_max": 4, "irradiance_w_m2": 400, "sold_w_max": 0}
    assert validate_params("gateway_offline", {"daylight_only": True})["daylight_only"] is True


@pytest.mark.parametrize(("kind", "params", "sentence"), [
    ("no_generation", {"irradiance": 350},
     "no_generation rules take no parameter 'irradiance' (known: flap_max, irradiance_w_m2, sold_w_max)"),
    ("no_generation", {"irradiance_w_m2": 5000},
     "no_generation parameter 'irradiance_w_m2': Input should be less than or equal to 1500"),
    ("yield_below_expected", {"share": 0}, "yield_below_expected parameter 'share': Input should be greater than 0"),
    ("gateway_offline", {"flap_max": 0},
     "gateway_offline parameter 'flap_max': Input should be greater than or equal to 1"),
    ("sunburn", {}, "unknown alert rule kind 'sunburn'"),
])
def test_bad_params_are_refused_in_one_sentence_naming_the_key(kind: str, params: dict[str, Any],
                                                                sentence: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_params(kind, params)
    assert str(caught.value).startswith(sentence)
    assert "\n" not in str(caught.value)


def test_the_most_specific_rule_wins() -> None:
    rules = [rule(1, "global", None), rule(2, "customer", "c1"), rule(3, "tag", "roof"),
             rule(4, "plant", "P-1")]
    assert effective_rule(rules, "P-1", "c1", frozenset({"roof"})) == rules[3]
    assert effective_rule(rules, "P-2", "c1", frozenset({"roof"})) == rules[2]
    assert effective_rule(rules, "P-2", "c1", frozenset()) == rules[1]
    assert effective_rule(rules, "P-2", "c2", frozenset({"field"})) == rules[0]
    # a disabled specific rule still wins: it silences the kind for its scope
    silenced = [rules[0], rule(5, "customer", "c2", enabled=False)]
    chosen = effective_rule(silenced, "P-3", "c2", frozenset())
    assert chosen is not None and not chosen.enabled


def test_two_tag_rules_the_stricter_severity_then_the_lowest_id_wins() -> None:
    rules = [rule(1, "global", None), rule(9, "tag", "a", "warning"), rule(8, "tag", "b", "critical"),
             rule(7, "tag", "c", "critical")]
    assert effective_rule(rules, "P", "c1", frozenset({"a", "b"})) == rules[2]
    assert effective_rule(rules, "P", "c1", frozenset({"a", "b", "c"})) == rules[3]
    assert effective_rule(list(reversed(rules)), "P", "c1", frozenset({"a", "b", "c"})) == rules[3]


class _Scope:
    def __init__(self, customer_id: str, tags: frozenset[str]) -> None:
        self.customer_id = customer_id
        self.tags = tags


def test_effective_rules_per_kind_and_plant() -> None:
    rules = [rule(1, "global", None), rule(2, "global", None, kind="gateway_offline"), rule(3, "plant", "P-2")]
    scopes = {"P-1": _Scope("c1", frozenset()), "P-2": _Scope("c1", frozenset())}
    chosen = effective_rules(rules, scopes)
    assert {k: {p: r.rule_id for p, r in v.items()} for k, v in chosen.items()} == {
        "no_generation": {"P-1": 1, "P-2": 3}, "gateway_offline": {"P-1": 2, "P-2": 2}}
