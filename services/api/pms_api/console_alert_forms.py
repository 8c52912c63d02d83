"""The console's alert rule and channel forms read into the API's request models (like console_forms),
so a form and a REST call are checked by the same rules; what does not fit comes back as sentences
naming the field.

A rule's params are edited one input per setting (`param:<name>`), read back as the type the rule
holds now: a checkbox for true/false, a number for a number, text otherwise.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from pms_api.alert_models import AlertRuleIn, AlertRuleUpdate, ChannelIn
from pms_api.console_forms import _problems
from pms_registry.records import AlertRule

PARAM_PREFIX = "param:"


def _number(text: str, current: int | float) -> int | float:
    value = float(text)
    return int(value) if isinstance(current, int) and value.is_integer() else value


def rule_form(form: MultiDict[str, str], rule: AlertRule) -> AlertRuleUpdate | list[str]:
    """The rule's settings as edited: enabled, severity, both durations (seconds) and each param."""
    params: dict[str, Any] = {}
    problems = []
    for name, current in rule.params.items():
        text = form.get(PARAM_PREFIX + name, "").strip()
        if isinstance(current, bool):
            params[name] = form.get(PARAM_PREFIX + name) == "1"
        elif isinstance(current, int | float):
            try:
                params[name] = _number(text, current)
            except ValueError:
                problems.append(f"params.{name}: a number, e.g. {current}")
        else:
            params[name] = text
    if problems:
        return problems
    fields = {name: form.get(name, "").strip() for name in ("severity", "raise_for_s", "clear_for_s")}
    try:
        return AlertRuleUpdate.model_validate({**{name: value for name, value in fields.items() if value},
                                               "enabled": form.get("enabled") == "1", "params": params})
    except ValidationError as exc:
        return _problems(exc)


def override_form(form: MultiDict[str, str], defaults: dict[str, AlertRule]) -> AlertRuleIn | list[str]:
    """A new override for a customer, tag or plant: it starts as a copy of the kind's global default
    with the severity chosen; its thresholds are then edited like any rule's."""
    kind = form.get("kind", "").strip()
    default = defaults.get(kind)
    if default is None:
        return [f"kind: no rule kind {kind or '(none)'}"]
    try:
        return AlertRuleIn.model_validate({
            "kind": kind, "scope": form.get("scope", "").strip(), "scope_value": form.get("scope_value", "").strip(),
            "severity": form.get("severity", "").strip() or default.severity, "enabled": default.enabled,
            "raise_for_s": default.raise_for_s, "clear_for_s": default.clear_for_s, "params": default.params})
    except ValidationError as exc:
        return _problems(exc)


def channel_form(form: MultiDict[str, str], *, admin: bool) -> ChannelIn | list[str]:
    """A new channel: a webhook's URL, or an e-mail channel's addresses (separated by commas, spaces or lines)."""
    kind = form.get("kind", "").strip()
    fields: dict[str, Any] = {"kind": kind, "name": form.get("name", "").strip(),
                              "language": form.get("language", "").strip() or None,
                              "min_severity": form.get("min_severity", "").strip() or None}
    if kind == "webhook":
        fields["url"] = form.get("url", "").strip()
    elif kind == "email":
        fields["to"] = [address for address in re.split(r"[\s,;]+", form.get("to", "").strip()) if address]
    if admin and form.get("customer_id", "").strip():
        fields["customer_id"] = form.get("customer_id", "").strip()
    try:
        return ChannelIn.model_validate({name: value for name, value in fields.items() if value is not None})
    except ValidationError as exc:
        return _problems(exc)
