"""Device-manager's presence through the real Mosquitto: a gateway that misses N-1 heartbeats stays
online, N goes offline, a last will takes it offline at once; every transition is in the registry's
presence history with its reason."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from pms_common import timeutil, topics
from pms_common.health import Health
from pms_common.messages import GatewayStatus, Heartbeat
from pms_device_manager.service import DeviceManager
from pms_device_manager.settings import DeviceManagerSettings
from pms_registry import Registry
from tests.collector.waiting import eventually

pytestmark = pytest.mark.integration

INTERVAL_S = 1.0
MISSED = 3


def _heartbeat(gateway_id: str, interval_s: float) -> bytes:
    return Heartbeat(gateway_id=gateway_id, at=timeutil.now_jst(), uptime_s=1.0, firmware="test",
                     module_family="sim", read_errors_total=0, outbox_depth=0, power_interval_s=60.0,
                     heartbeat_interval_s=interval_s).model_dump_json().encode()


def _client(client_id: str, will_gateway: str | None = None) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    if will_gateway is not None:
        will = GatewayStatus(gateway_id=will_gateway, state="offline", reason="connection lost")
        client.will_set(topics.status(will_gateway), will.model_dump_json(), qos=1, retain=True)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    return client


def test_offline_after_n_missed_heartbeats_and_at_once_on_a_last_will(mosquitto: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    quiet, dropped = f"gw-quiet-{run}", f"gw-drop-{run}"
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    settings = DeviceManagerSettings(mqtt_url=mosquitto, registry_url=registry.url, missed_heartbeats=MISSED,
                                     tick_s=0.1, mqtt_client_id=f"dm-{run}")
    manager = DeviceManager(settings, registry, Health())
    publisher = _client(f"pub-{run}")
    dropper = _client(f"drop-{run}", will_gateway=dropped)

    def state(gateway_id: str) -> str | None:
        found = registry.get_gateway(gateway_id)
        return None if found is None else found.status

    def beat(gateway_id: str, interval_s: float, client: paho.Client = publisher) -> float:
        client.publish(topics.heartbeat(gateway_id), _heartbeat(gateway_id, interval_s), qos=1).wait_for_publish()
        return time.monotonic()

    async def scenario() -> None:
        await eventually(lambda: manager.health.snapshot().get("mqtt") is True, 20, "device-manager subscribed")
        beat(quiet, INTERVAL_S)
        await eventually(lambda: state(quiet) == "online", 10, "online on the first heartbeat")
        for _ in range(2):  # N-1 heartbeats missed each time, then one arrives: never offline
            await asyncio.sleep((MISSED - 1) * INTERVAL_S)
            assert state(quiet) == "online"
            last = beat(quiet, INTERVAL_S)
        await eventually(lambda: state(quiet) == "offline", MISSED * INTERVAL_S + 5, "offline after N missed")
        assert time.monotonic() - last >= MISSED * INTERVAL_S  # not before the N-th interval passed

        beat(dropped, 30.0, dropper)  # a long interval: only the will can make it offline soon
        await eventually(lambda: state(dropped) == "online", 10, "the dropping gateway online")
        dropped_at = time.monotonic()
        dropper.socket().close()  # the link dies without DISCONNECT: the broker sends the last will
        await eventually(lambda: state(dropped) == "offline", 5, "offline on the last will")
        assert time.monotonic() - dropped_at < 5

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(manager._follow_presence(stop))
        try:
            await asyncio.wait_for(scenario(), 60)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    try:
        asyncio.run(main())
        reasons: Callable[[str], list[tuple[str, str]]] = lambda gw: [  # noqa: E731
            (p.state, p.reason) for p in reversed(registry.presence_history(gw))]
        assert reasons(quiet) == [("online", "heartbeat"),
                                  ("offline", f"no heartbeat for {int(MISSED * INTERVAL_S)} s")]
        assert reasons(dropped) == [("online", "heartbeat"), ("offline", "connection lost")]
    finally:
        publisher.publish(topics.status(dropped), b"", qos=1, retain=True).wait_for_publish()  # clear the will
        for client in (publisher, dropper):
            client.loop_stop()
            client.disconnect()
        registry.close()
