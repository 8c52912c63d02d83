"""The Notifier as the alerts service runs it: the dispatcher and the MQTT publisher together, against
the real Mosquitto; every happening on pms/v1/events/{kind} once (QoS 1), also across a restart."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiomqtt
import pytest

from pms_alerts.notify.mqtt_publisher import publish_pending
from pms_alerts.notify.notifier import Notifier
from pms_registry.records import AlertRecord
from tests.alerts.notify.conftest import Fleet, notify_settings


async def _collect(gateway_id: str, received: list[tuple[str, dict[str, Any]]], ready: asyncio.Event) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"test-events-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe("pms/v1/events/#", qos=1)
        ready.set()
        async for message in client.messages:
            payload = json.loads(bytes(message.payload))  # type: ignore[arg-type]
            if payload.get("gateway_id") == gateway_id:  # the shared broker carries other tests' events
                received.append((str(message.topic), payload))


async def _run_notifier(fleet: Fleet, seconds: float) -> None:
    stop = asyncio.Event()
    settings = notify_settings(fleet.mail, mqtt_url="mqtt://127.0.0.1:1883",
                               mqtt_client_id=f"pms-alerts-test-{uuid.uuid4().hex[:8]}", notify_poll_s=0.1)
    task = asyncio.create_task(Notifier(settings, fleet.registry, fleet.clock).run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest.mark.integration
def test_every_happening_is_published_once_across_a_restart(fleet: Fleet, mosquitto: str) -> None:
    gateway_id = f"gw-{uuid.uuid4().hex[:12]}"
    code = fleet.codes[0]
    record = AlertRecord(alert_id=None, kind="gateway_offline", subject=code, service_code=code, gateway_id=gateway_id,
                         rule_id=None, severity="critical", state="pending", pending_since=fleet.clock.now)

    async def scenario() -> list[tuple[str, dict[str, Any]]]:
        received: list[tuple[str, dict[str, Any]]] = []
        ready = asyncio.Event()
        collector = asyncio.create_task(_collect(gateway_id, received, ready))
        await asyncio.wait_for(ready.wait(), 10)
        fired, _ = fleet.registry.fire_alert(record, at=fleet.clock.now, message=f"gateway {gateway_id} is offline",
                                             params={"reason": "missed heartbeats"})
        await _run_notifier(fleet, 1.0)
        # While the notifier is down (a restart): an acknowledgement and the recovery.
        fleet.clock.advance(60)
        assert fired.alert_id is not None
        acked, _ = fleet.registry.acknowledge_alert(fired.alert_id, by="ops", comment="見に行きます", at=fleet.clock.now)
        fleet.clock.advance(60)
        fleet.registry.resolve_alert(acked, at=fleet.clock.now)
        await _run_notifier(fleet, 1.5)
        await asyncio.sleep(0.5)
        collector.cancel()
        return received

    received = asyncio.run(scenario())
    assert [topic for topic, _ in received] == ["pms/v1/events/gateway_offline", "pms/v1/events/alert_acknowledged",
                                                "pms/v1/events/gateway_recovered"]
    raised, acked, cleared = (payload for _, payload in received)
    assert (raised["state"], raised["kind"], raised["params"], raised["severity"]) == (
        "open", "gateway_offline", {"reason": "missed heartbeats"}, "critical")
    assert raised["message"] == f"Gateway {gateway_id} at {code} is offline: missed heartbeats"  # event_text, English
    assert "offline" not in cleared["message"] or "back" in cleared["message"]
    assert (acked["state"], acked["acknowledged_by"], acked["ack_comment"]) == ("info", "ops", "見に行きます")
    assert (cleared["state"], cleared["kind"], cleared["event_id"]) == ("recovered", "gateway_recovered",
                                                                       raised["event_id"])
    # The same notifier runs the deliveries: the webhook got the raise (group wait 30 s passed on the clock).
    assert [h["phase"] for item in fleet.webhook.accepted for h in item.body["happenings"]][:1] == ["raised"]


def test_an_event_the_contract_cannot_carry_is_skipped_not_a_block(fleet: Fleet) -> None:
    fleet.registry.record_info_event(kind="not_a_v1_kind", at=fleet.clock.now, service_code=fleet.codes[0],
                                     message="odd")
    fleet.raise_offline(fleet.codes[0])
    sent: list[tuple[str, bytes]] = []

    async def publish(topic: str, payload: bytes) -> None:
        sent.append((topic, payload))

    assert asyncio.run(publish_pending(fleet.registry, publish)) == 1
    assert [topic for topic, _ in sent] == ["pms/v1/events/gateway_offline"]
    assert fleet.registry.get_cursor("mqtt") == 2
    assert asyncio.run(publish_pending(fleet.registry, publish)) == 0  # nothing again after the skip


def test_the_event_logs_own_records_are_passed_over_quietly(fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    """A claimed gateway (a log-only kind, not a v1 Event) moves the cursor without an error or a count."""
    from pms_alerts.notify.mqtt_publisher import UNPUBLISHABLE

    before = UNPUBLISHABLE._value.get()
    fleet.registry.record_info_event(kind="gateway_claimed", at=fleet.clock.now, gateway_id="gw-new",
                                     message="claimed", params={"gateway_id": "gw-new", "serial": "S1"})
    fleet.raise_offline(fleet.codes[0])
    sent: list[tuple[str, bytes]] = []

    async def publish(topic: str, payload: bytes) -> None:
        sent.append((topic, payload))

    assert asyncio.run(publish_pending(fleet.registry, publish)) == 1
    assert [topic for topic, _ in sent] == ["pms/v1/events/gateway_offline"]
    assert fleet.registry.get_cursor("mqtt") == 2
    assert UNPUBLISHABLE._value.get() == before
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_stop_does_not_wait_for_the_event_backlog(fleet: Fleet) -> None:
    """A stop set while a backlog is published ends the pass after the happening in hand (a big fleet's
    first start journals a claim per gateway); the next start goes on from there, missing none."""
    for index in range(10):
        fleet.registry.record_info_event(kind="gateway_claimed", at=fleet.clock.now, gateway_id=f"gw-{index}",
                                         message="claimed", params={"gateway_id": f"gw-{index}", "serial": "S"})
    codes = fleet.add_plants(6)
    for code in codes:
        fleet.raise_offline(code)
    stop = asyncio.Event()
    sent: list[str] = []

    async def publish(topic: str, payload: bytes) -> None:
        sent.append(json.loads(payload)["service_code"])
        if len(sent) == 2:
            stop.set()  # as `pms up` does on Ctrl-C while the backlog is being published

    notifier = Notifier(fleet.settings, fleet.registry, fleet.clock)
    assert asyncio.run(notifier.publish_events(publish, stop)) == 2
    assert sent == codes[:2]
    assert fleet.registry.get_cursor("mqtt") == 12  # the ten claims passed over, then two published

    assert asyncio.run(notifier.publish_events(publish)) == 4  # the next start: the rest, once each
    assert sent == codes
