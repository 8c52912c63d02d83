"""Events for the events page and API tests, written through the registry's own steps (an alert is
saved pending and fired as the alerts service does)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pms_registry import Registry
from pms_registry.records import AlertRecord, EventRecord


def fire_no_generation(registry: Registry, code: str, gateway_id: str, at: datetime) -> EventRecord:
    """A firing no_generation alert at plant `code`: its open event, acknowledgeable."""
    rule = next(r for r in registry.list_alert_rules("no_generation") if r.scope == "global")
    params = {"irradiance_w_m2": 640, "threshold_w_m2": 350, "sold_w": 0, "for_s": 1800}
    pending = registry.save_alert(AlertRecord(
        alert_id=None, kind="no_generation", subject=code, service_code=code, gateway_id=gateway_id,
        rule_id=rule.rule_id, severity=rule.severity, state="pending", pending_since=at - timedelta(minutes=30),
        params=params))
    _, event = registry.fire_alert(pending, at=at, message=f"{code}: no generation at 640 W/m²", params=params)
    return event
