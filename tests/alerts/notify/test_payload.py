"""Delivery bodies and keys, and the MQTT payload of a happening (sans-IO)."""

from __future__ import annotations

import json
from datetime import datetime

from pms_alerts.notify.mqtt_publisher import event_payload, mqtt_kind
from pms_alerts.notify.payload import Told, body_bytes, delivery_body, idempotency_key, told_of
from pms_common.messages import Event
from pms_common.timeutil import JST
from pms_registry.records import EventRecord, Happening

AT = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


def _told(happening_id: int) -> Told:
    return Told(happening_id=happening_id, phase="raised", at=AT, event_id=happening_id, kind="gateway_offline",
                state="open", severity="critical", service_code="pss00000001", plant_name="北斗", gateway_id="gw-1",
                opened_at=AT, recovered_at=None, message="m", params={"reason": "r"})


def test_the_key_depends_on_the_channel_and_the_set_of_happenings_only() -> None:
    key = idempotency_key(3, [5, 1, 2])
    assert key == idempotency_key(3, [1, 2, 5, 5]) and len(key) == 64
    assert key != idempotency_key(4, [1, 2, 5]) and key != idempotency_key(3, [1, 2])


def test_a_body_round_trips_and_its_bytes_are_stable() -> None:
    body = delivery_body(3, [_told(2), _told(1)])
    assert [item["happening_id"] for item in body["happenings"]] == [1, 2]
    assert body["idempotency_key"] == idempotency_key(3, [1, 2]) and body["count"] == 2
    assert told_of(json.loads(body_bytes(body))) == [_told(1), _told(2)]
    assert body_bytes(body) == body_bytes(json.loads(body_bytes(body)))
    assert "北斗".encode() in body_bytes(body)


def test_mqtt_payload_is_the_v1_event_with_params() -> None:
    event = EventRecord(event_id=7, kind="gateway_offline", state="recovered", gateway_id="gw-1",
                        service_code="pss00000001", opened_at=AT, recovered_at=AT, message="gateway gw-1 is offline",
                        severity="critical", params={"reason": "missed heartbeats"})
    cleared = Happening(happening_id=9, phase="cleared", at=AT, event=event)
    assert mqtt_kind(cleared) == "gateway_recovered"
    message = Event.model_validate_json(event_payload(cleared))
    assert (message.kind, message.state, message.event_id) == ("gateway_recovered", "recovered", 7)
    data = json.loads(event_payload(cleared))
    assert data["params"] == {"reason": "missed heartbeats"} and data["severity"] == "critical"
    assert "offline" not in data["message"] or "back" in data["message"]  # the clear's own sentence
