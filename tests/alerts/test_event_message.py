"""The MQTT Event of an event-log row (pms_common.events.event_message): the kind published, the English
sentence of the phase, and the row's own facts, from rows a real registry wrote."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pms_common.events import event_message
from pms_common.timeutil import JST
from pms_registry import Registry

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
    assert (cleared.kind, cleared.state) == ("gateway_recovered", "recovered")
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
