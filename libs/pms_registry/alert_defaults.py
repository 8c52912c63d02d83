"""The alert rules PMS ships: one global rule per kind, seeded into the registry when missing.

Kept apart from alerting.py because the schema upgrade seeds them (migrations cannot import the
registry's parts, which import the upgrade).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from pms_registry import schema as t

SEVERITIES = ("info", "warning", "critical")  # ascending

# The shipped defaults: one global rule per kind, seeded when missing (also for kinds a later
# version adds). kind: (severity, raise_for_s, clear_for_s, params). The alerts service validates
# params per kind; docs/alerts.md explains each.
DEFAULT_RULES: dict[str, tuple[str, int, int, dict[str, Any]]] = {
    "gateway_offline": ("critical", 300, 300, {"daylight_only": False, "flap_max": 4}),
    "meter_unreachable": ("warning", 600, 600, {"silent_s": 600, "flap_max": 4}),
    "no_generation": ("critical", 1800, 900, {"irradiance_w_m2": 350, "sold_w_max": 0, "flap_max": 4}),
    "yield_below_expected": ("warning", 0, 0, {"share": 0.8, "days": 3, "flap_max": 4}),
    "data_gap": ("warning", 0, 0, {"window_h": 26, "lookback_days": 7, "flap_max": 4}),
    "meter_clock_skew": ("warning", 0, 3600, {"flap_max": 4}),
    "meter_scale_invalid": ("critical", 0, 0, {"flap_max": 4}),
    "update_failed": ("warning", 0, 0, {"flap_max": 4}),
    "register_anomaly": ("warning", 0, 0, {}),
    "billing_start_decided": ("info", 0, 0, {}),
    "meter_history_conflict": ("info", 0, 0, {}),
}


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def seed_default_rules(conn: Connection, at: datetime) -> None:
    """Insert the global rule of every kind that has none (an edited default is left as it is)."""
    have = set(conn.execute(select(t.alert_rules.c.kind).where(t.alert_rules.c.scope == "global")).scalars())
    for kind, (severity, raise_for_s, clear_for_s, params) in DEFAULT_RULES.items():
        if kind not in have:
            conn.execute(insert(t.alert_rules).values(
                kind=kind, scope="global", scope_value="", enabled=True, severity=severity,
                raise_for_s=raise_for_s, clear_for_s=clear_for_s, params=dict(params), updated_at=at,
                updated_by=None))
