"""Device-manager's presence through the real Mosquitto with the dynamic-security plugin (device-manager on
its production login, each gateway on its own): a gateway that misses N-1 heartbeats stays online, N goes
offline, a last will takes it offline at once; every transition is in the registry's presence history
with its reason, on a SQLite and a PostgreSQL registry; the heartbeats' outbox depth is a gauge per
online gateway; the registry's gateways by condition are a gauge that follows them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from prometheus_client import REGISTRY

from pms_common import timeutil, topics
from pms_common.dynsec import DynsecBrokerAdmin
from pms_common.health import Health
from pms_common.messages import GatewayStatus, Heartbeat
from pms_device_manager.service import DeviceManager
from pms_device_manager.settings import DeviceManagerSettings
from pms_registry import Registry
from tests.collector.waiting import eventually
from tests.dynsec_broker import DynsecBroker
from tests.postgres import registry_url

pytestmark = pytest.mark.integration

INTERVAL_S = 1.0
MISSED = 3


def _heartbeat(gateway_id: str, interval_s: float, outbox_depth: int = 0) -> bytes:
    return Heartbeat(gateway_id=gateway_id, at=timeutil.now_jst(), uptime_s=1.0, firmware="test",
                     module_family="sim", read_errors_total=0, outbox_depth=outbox_depth, power_interval_s=60.0,
                     heartbeat_interval_s=interval_s).model_dump_json().encode()


def _client(broker: DynsecBroker, gateway_id: str, will: bool = False) -> paho.Client:
    """A gateway's connection on a login of its own (made as a claim makes it)."""
    login = asyncio.run(DynsecBrokerAdmin(broker.admin_address).create_gateway_login(gateway_id))
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"pms-gw-{gateway_id}")
    client.username_pw_set(login.username, login.password)
    if will:
        offline = GatewayStatus(gateway_id=gateway_id, state="offline", reason="connection lost")
        client.will_set(topics.status(gateway_id), offline.model_dump_json(), qos=1, retain=True)
    connected: list[Any] = []
    client.on_connect = lambda _c, _u, _f, code, _p: connected.append(code)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not connected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert connected and not connected[0].is_failure, connected
    return client


@pytest.mark.parametrize("registry_kind", ["sqlite", "postgresql"])
def test_offline_after_n_missed_heartbeats_and_at_once_on_a_last_will(
        dynsec_broker: DynsecBroker, tmp_path: Path, registry_kind: str) -> None:
    with registry_url(registry_kind, tmp_path) as url:
        presence_scenario(dynsec_broker, Registry(url))


def presence_scenario(broker: DynsecBroker, registry: Registry) -> None:
    run = uuid.uuid4().hex[:8]
    quiet, dropped = f"gw-quiet-{run}", f"gw-drop-{run}"
    registry.migrate()
    # Both bound to a plant, with a third bound gateway never heard from and one heard from but unbound:
    # the registry's count by condition is a gauge (the share offline is PMSGatewaysOnlineFalling's).
    registry.ensure_customer("c1", "One")
    plant = registry.create_plant(customer_id="c1", name="P", address="A", phone="0", created_at=timeutil.now_jst())
    for gateway_id in (quiet, dropped, f"gw-new-{run}"):
        registry.bind_gateway(gateway_id, plant)
    registry.record_gateway_status(f"gw-free-{run}", "online", timeutil.now_jst())
    settings = DeviceManagerSettings(mqtt_url=broker.url(broker.services["device-manager"]), registry_url=registry.url,
                                     missed_heartbeats=MISSED, tick_s=0.1, mqtt_client_id=f"dm-{run}",
                                     fleet_count_s=0.1)
    manager = DeviceManager(settings, registry, Health())
    publisher = _client(broker, quiet)
    dropper = _client(broker, dropped, will=True)

    def state(gateway_id: str) -> str | None:
        found = registry.get_gateway(gateway_id)
        return None if found is None else found.status

    def beat(gateway_id: str, interval_s: float, client: paho.Client = publisher, outbox_depth: int = 0) -> float:
        payload = _heartbeat(gateway_id, interval_s, outbox_depth)
        client.publish(topics.heartbeat(gateway_id), payload, qos=1).wait_for_publish()
        return time.monotonic()

    def outbox_depth(gateway_id: str) -> float | None:
        return REGISTRY.get_sample_value("pms_device_manager_gateway_outbox_depth", {"gateway_id": gateway_id})

    def fleet(online: int, offline: int, never_seen: int) -> bool:
        return all(REGISTRY.get_sample_value("pms_device_manager_gateways", {"condition": condition}) == count
                   for condition, count in (("online", online), ("offline", offline), ("never_seen", never_seen),
                                            ("unbound", 1)))

    async def scenario() -> None:
        await eventually(lambda: manager.health.snapshot().get("mqtt") is True, 20, "device-manager subscribed")
        await eventually(lambda: fleet(online=0, offline=0, never_seen=3), 5, "three bound gateways never seen")
        beat(quiet, INTERVAL_S, outbox_depth=7)
        await eventually(lambda: state(quiet) == "online", 10, "online on the first heartbeat")
        await eventually(lambda: fleet(online=1, offline=0, never_seen=2), 5, "one bound gateway online")
        # Gateways are not scraped: their outbox depth reaches Prometheus through device-manager.
        assert outbox_depth(quiet) == 7
        for depth in (9, 12):  # N-1 heartbeats missed each time, then one arrives: never offline
            await asyncio.sleep((MISSED - 1) * INTERVAL_S)
            assert state(quiet) == "online"
            last = beat(quiet, INTERVAL_S, outbox_depth=depth)
        await eventually(lambda: outbox_depth(quiet) == 12, 5, "the latest heartbeat's outbox depth")
        await eventually(lambda: state(quiet) == "offline", MISSED * INTERVAL_S + 5, "offline after N missed")
        assert time.monotonic() - last >= MISSED * INTERVAL_S  # not before the N-th interval passed
        assert outbox_depth(quiet) is None  # an offline gateway's depth is unknown: its series is gone
        await eventually(lambda: fleet(online=0, offline=1, never_seen=2), 5, "one bound gateway offline")

        beat(dropped, 30.0, dropper)  # a long interval: only the will can make it offline soon
        await eventually(lambda: state(dropped) == "online", 10, "the dropping gateway online")
        dropped_at = time.monotonic()
        dropper.socket().close()  # the link dies without DISCONNECT: the broker sends the last will
        await eventually(lambda: state(dropped) == "offline", 5, "offline on the last will")
        assert time.monotonic() - dropped_at < 5
        await eventually(lambda: fleet(online=0, offline=2, never_seen=1), 5, "both heard-from gateways offline")

    async def main() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(manager._follow_presence(stop)), asyncio.create_task(manager._count_fleet(stop))]
        try:
            await asyncio.wait_for(scenario(), 60)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)

    try:
        asyncio.run(main())
        reasons: Callable[[str], list[tuple[str, str]]] = lambda gw: [  # noqa: E731
            (p.state, p.reason) for p in reversed(registry.presence_history(gw))]
        assert reasons(quiet) == [("online", "heartbeat"),
                                  ("offline", f"no heartbeat for {int(MISSED * INTERVAL_S)} s")]
        assert reasons(dropped) == [("online", "heartbeat"), ("offline", "connection lost")]
    finally:
        for client in (publisher, dropper):
            client.loop_stop()
            client.disconnect()
        registry.close()
