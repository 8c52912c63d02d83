"""The console's gateway and rollout forms read into the API's request models, so a form and a REST call are
checked by the same rules; what does not fit comes back as sentences naming the field.

HTML forms send every field as text, empty when left blank: blank means "keep" for a setting and
"not given" for an argument.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from pms_api.gateway_control_models import CommandIn, ConfigIn
from pms_api.rollout_models import RolloutIn
from pms_common import timeutil

CONFIG_FIELDS = ("power_interval_s", "heartbeat_interval_s", "energy_interval_s", "log_level")
ROLLOUT_FIELDS = ("error_action", "min_group_size", "deadline_s", "health_timeout_s", "window")


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        out.append(f"{where}: {message}" if where else message)
    return out


def config_form(form: MultiDict[str, str]) -> ConfigIn | list[str]:
    """The settings filled in (blank ones keep their value), or why they cannot be pushed."""
    fields: dict[str, Any] = {name: form.get(name, "").strip() for name in CONFIG_FIELDS}
    try:
        return ConfigIn.model_validate({name: value for name, value in fields.items() if value})
    except ValidationError as exc:
        return _problems(exc)


def command_form(form: MultiDict[str, str]) -> CommandIn | list[str]:
    """The command with the arguments its kind takes: read_property an EPC; backfill a range of JST days
    (`from` and `to`, both included); rejoin and restart_link none."""
    command = form.get("command", "").strip()
    args: dict[str, Any] = {}
    try:
        if command == "read_property":
            args["epc"] = form.get("epc", "").strip().upper()
        elif command == "backfill":
            first = date.fromisoformat(form.get("from", "").strip())
            last = date.fromisoformat(form.get("to", "").strip() or first.isoformat())
            args["from"] = timeutil.day_start(first).isoformat()
            args["to"] = timeutil.day_start(last + timedelta(days=1)).isoformat()
    except ValueError:
        return ["from/to: backfill needs the first and last day as YYYY-MM-DD"]
    try:
        return CommandIn.model_validate({"command": command, "args": args,
                                         "timeout_s": form.get("timeout_s", "").strip() or 30})
    except ValidationError as exc:
        return _problems(exc)


def rollout_form(form: MultiDict[str, str]) -> RolloutIn | list[str]:
    """A new rollout from the console's form: the target as a kind and its value (a list of gateways
    separated by commas, spaces or lines), the groups as cumulative percents ("1, 10, 100"), the
    thresholds in percent."""
    kind = form.get("target_kind", "").strip()
    value = form.get("target_value", "").strip()
    target: dict[str, Any] = {kind: [gw for gw in re.split(r"[\s,]+", value) if gw] if kind == "gateways" else value}
    try:
        groups = [float(size) for size in re.split(r"[\s,]+", form.get("groups", "").strip()) if size]
        shares = {name: float(form.get(f"{name}_pct", "").strip()) / 100
                  for name in ("success_threshold", "error_threshold")}
    except ValueError:
        return ["groups, thresholds: numbers, e.g. groups 1, 10, 100 and thresholds 95 and 5 (percent)"]
    fields = {name: form.get(name, "").strip() for name in ROLLOUT_FIELDS}
    try:
        return RolloutIn.model_validate({"image": form.get("image", "").strip(), "target": target, "groups": groups,
                                         **shares, **{name: value for name, value in fields.items() if value}})
    except ValidationError as exc:
        return _problems(exc)
