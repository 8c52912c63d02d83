"""The MQTT Event of an event-log row (pms_common.events.event_message): the kind published, the English
sentence of the phase, and the row's own facts, from rows a real registry wrote."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pms_common.events import event_message
from pms_common.timeutil import JST
from pms_registry import Registry
from pms_registry.records import AlertRecord

T = datetime(2026, 12, 3, 9, 0, tzinfo=JST)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    return registry


def test_a_gateway_recovery_is_published_as_a_recovery(registry: Registry) -> None:
    opened, _ = registry.open_event(kind="gateway_offline", at=T, gateway_id="gw-0001",
                                    message="gateway gw-0001 is offline (shutdown)")
    raised = event_message(opened, "raised")
    assert (raised.kind, raised.state, raised.message) == (
        "gateway_offline", "open", "gateway gw-0001 is offline (shutdown)")  # a row without params keeps its text
    recovered = registry.recover_event(kind="gateway_offline", gateway_id="gw-0001", at=T + timedelta(hours=2))
    assert recovered is not None
    cleared = event_message(recovered, "cleared")
    assert (cleared.kind, cleared.state, cleared.phase) == ("gateway_recovered", "recovered", "cleared")
    assert cleared.message == "Gateway gw-0001 is back online"
    assert "offline" not in cleared.message
    assert event_message(recovered).kind == "gateway_recovered"  # the phase follows from the row's state


def test_other_kinds_keep_their_kind_and_the_kind_can_be_forced(registry: Registry) -> None:
    opened, _ = registry.open_event(kind="meter_clock_skew", at=T, gateway_id="gw-0001", message="skewed")
    recovered = registry.recover_event(kind="meter_clock_skew", gateway_id="gw-0001", at=T + timedelta(minutes=5))
    assert recovered is not None
    cleared = event_message(recovered)
    assert (cleared.kind, cleared.state, cleared.message) == (
        "meter_clock_skew", "recovered", "The meter clock of gw-0001 is right again")
    info = registry.record_info_event(kind="billing_start_decided", at=T, message="billing starts 2026-12-03",
                                      service_code=None)
    assert event_message(info).message == "billing starts 2026-12-03"
    assert event_message(opened, "raised", kind="gateway_offline").kind == "gateway_offline"


def test_a_phase_that_is_a_kind_is_refused(registry: Registry) -> None:
    opened, _ = registry.open_event(kind="gateway_offline", at=T, gateway_id="gw-0001", message="m")
    with pytest.raises(ValueError, match="no event phase"):
        event_message(opened, "gateway_recovered")  # type: ignore[arg-type]


def test_every_happening_of_an_alert_is_an_event_with_its_facts(registry: Registry) -> None:
    registry.ensure_customer("c1", "Customer 1")
    code = registry.create_plant(customer_id="c1", name="Sunny Hill", address="a", phone="0", created_at=T)
    alert = registry.save_alert(AlertRecord(
        alert_id=None, kind="no_generation", subject=code, service_code=code, gateway_id=None, rule_id=None,
        severity="warning", state="pending", pending_since=T))
    params = {"irradiance_w_m2": 612, "threshold_w_m2": 350, "sold_w": 0, "for_s": 3600}
    alert, _ = registry.fire_alert(alert, at=T + timedelta(hours=1), message="no generation", params=params)
    assert alert.alert_id is not None
    alert, _ = registry.acknowledge_alert(alert.alert_id, by="tanaka", comment="on site at 14:00",
                                          at=T + timedelta(hours=2))
    registry.resolve_alert(alert, at=T + timedelta(hours=3), params={"duration_s": 7200})
    events = [event_message(h.event, h.phase) for h in registry.happenings_after(0)]
    assert [(e.kind, e.state, e.phase) for e in events] == [
        ("no_generation", "recovered", "raised"),  # each happening carries the event as it is now
        ("alert_acknowledged", "info", "acknowledged"),
        ("no_generation", "recovered", "cleared")]
    raised, acknowledged, cleared = events
    assert raised.message == f"{code}: sun at 612 W/m² (threshold 350 W/m²) but selling 0 W for 1 h"
    assert (raised.alert_id, raised.severity, raised.params) == (alert.alert_id, "warning", params | {"duration_s": 7200})
    assert acknowledged.message == f"tanaka acknowledged No generation at {code} (on site at 14:00)"
    assert (acknowledged.acknowledged_by, acknowledged.ack_comment) == ("tanaka", "on site at 14:00")
    assert cleared.message == f"{code}: generating again (lasted 2 h)"
    assert event_message(registry.happenings_after(0)[2].event, "cleared", plant_name="Sunny Hill").message == (
        f"Sunny Hill ({code}): generating again (lasted 2 h)")
