"""Gateway control end to end: the API (in-process Flask) writes the registry, device-manager publishes
over a Mosquitto of the test's own with the dynamic-security plugin (its production login), and real
collectors (simulated radio) apply and answer, each with its own broker login confined to its tree.
Every end-to-end test runs on a SQLite registry and on the real PostgreSQL (a scratch database)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from pms.fleet import build_fleet_from, fleet_settings
from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.settings import CollectorSettings
from pms_common import timeutil
from pms_common.broker_admin import BrokerLogin
from pms_common.dynsec import DynsecBrokerAdmin
from pms_common.health import Health
from pms_common.messages import CommandRequest, CommandResult
from pms_common.mqtt import BrokerAddress
from pms_device_manager.gateway_control import GatewayControl
from pms_device_manager.service import DeviceManager
from pms_device_manager.settings import DeviceManagerSettings
from pms_registry import Registry
from pms_registry.gateway_control import NO_ANSWER_REASON, OFFLINE_REASON
from tests.collector.waiting import eventually
from tests.dynsec_broker import DynsecBroker
from tests.postgres import registry_url

ADMIN = "admin-secret"


@dataclass
class Cloud:
    broker: DynsecBroker
    registry: Registry
    client: FlaskClient
    dm_settings: DeviceManagerSettings
    logins: dict[str, BrokerLogin] = field(default_factory=dict)

    def gateway_urls(self, gateway_ids: list[str]) -> dict[str, str]:
        """Each gateway's broker URL with a login of its own (made as a claim makes it), confined to its tree."""
        missing = [gateway_id for gateway_id in gateway_ids if gateway_id not in self.logins]

        async def make() -> None:
            admin = DynsecBrokerAdmin(self.broker.admin_address)
            for gateway_id in missing:
                self.logins[gateway_id] = await admin.create_gateway_login(gateway_id)

        if missing:
            asyncio.run(make())
        return {gateway_id: self.broker.url(self.logins[gateway_id]) for gateway_id in gateway_ids}

    @property
    def device_manager_address(self) -> BrokerAddress:
        return self.broker.address(self.broker.services["device-manager"])

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        def send() -> tuple[int, Any]:
            response = self.client.open(path, method=method, json=body, headers={"Authorization": f"Bearer {ADMIN}"})
            return response.status_code, response.get_json()
        return await asyncio.to_thread(send)

    async def command(self, gateway_id: str, command: str, args: dict[str, Any] | None = None,
                      timeout_s: int = 20) -> str:
        status, body = await self.call("POST", f"/api/v1/gateways/{gateway_id}/commands",
                                       {"command": command, "args": args or {}, "timeout_s": timeout_s})
        assert status == 202, body
        return str(body["command_id"])

    async def state_of(self, gateway_id: str, command_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/api/v1/gateways/{gateway_id}/commands/{command_id}")
        assert status == 200, body
        return dict(body)

    async def until_over(self, gateway_id: str, command_id: str, timeout_s: float = 40) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = await self.state_of(gateway_id, command_id)
            if found["state"] not in ("queued", "sent"):
                return found
            await asyncio.sleep(0.2)
        raise AssertionError(f"command {command_id} still open after {timeout_s} s")

    def device_manager(self) -> DeviceManager:
        return DeviceManager(self.dm_settings, self.registry, Health())


@pytest.fixture(params=["sqlite", "postgresql"])
def cloud(request: pytest.FixtureRequest, tmp_path: Path, dynsec_broker: DynsecBroker) -> Iterator[Cloud]:
    with ExitStack() as stack:
        url = stack.enter_context(registry_url(request.param, tmp_path))
        app = create_app(ApiSettings(registry_url=url, tsdb_url=f"sqlite:///{tmp_path}/ts.db", admin_api_key=ADMIN))
        registry: Registry = app.config["registry"]
        stack.callback(registry.close)
        stack.callback(app.config["store"].close)
        settings = DeviceManagerSettings(mqtt_url=dynsec_broker.url(dynsec_broker.services["device-manager"]),
                                         registry_url=url, mqtt_client_id=f"dm-{uuid.uuid4().hex[:8]}", tick_s=0.5,
                                         control_poll_s=0.2, command_answer_grace_s=1.0)
        yield Cloud(dynsec_broker, registry, app.test_client(), settings)


def collector(cloud: Cloud, tmp_path: Path, gateway_id: str) -> Gateway:
    settings = CollectorSettings(link="sim", gateway_id=gateway_id, mqtt_url=cloud.gateway_urls([gateway_id])[gateway_id],
                                 outbox_path=tmp_path / f"outbox-{gateway_id}.db", backfill_days=0,
                                 heartbeat_interval_s=2)
    return build_gateway(settings, SimulatedModuleLink(settings), Health())


async def running(parts: list[Callable[[asyncio.Event], Awaitable[None]]], scenario: Awaitable[None],
                  timeout_s: float = 90) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(part(stop)) for part in parts]
    try:
        await asyncio.wait_for(scenario, timeout_s)
    finally:
        stop.set()
        stopping = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        print(f"stopped in {time.monotonic() - stopping:.1f} s")


@pytest.mark.integration
def test_commands_succeed_on_an_online_gateway_and_expire_for_an_offline_one(cloud: Cloud, tmp_path: Path) -> None:
    gateway = collector(cloud, tmp_path, "gw-online")
    cloud.registry.record_gateway_status("gw-offline", "offline", timeutil.now_jst())

    async def scenario() -> None:
        await asyncio.wait_for(gateway.link.ready.wait(), 30)
        await eventually(lambda: any(g.gateway_id == "gw-online" and g.status == "online"
                                     for g in cloud.registry.list_gateways()), 20, "gw-online online")
        read = await cloud.until_over("gw-online", await cloud.command("gw-online", "read_property", {"epc": "E7"}))
        assert read["state"] == "succeeded" and read["result"]["epc"] == "E7" and read["sent_at"] is not None
        joins = gateway.link.joins
        rejoin = await cloud.until_over("gw-online", await cloud.command("gw-online", "rejoin"))
        assert rejoin["state"] == "succeeded" and gateway.link.joins > joins
        started = time.monotonic()
        offline = await cloud.until_over("gw-offline", await cloud.command("gw-offline", "rejoin", timeout_s=2))
        assert (offline["state"], offline["reason"], offline["sent_at"]) == ("expired", OFFLINE_REASON, None)
        assert 2 <= time.monotonic() - started < 6  # at its deadline, not forever
        status, audit = await cloud.call("GET", "/api/v1/audit?action=command")
        assert status == 200
        assert [(e["target"], e["detail"]["command"], e["outcome"]) for e in audit["items"]] == [
            ("gw-offline", "rejoin", f"expired: {OFFLINE_REASON}"), ("gw-online", "rejoin", "succeeded"),
            ("gw-online", "read_property", "succeeded")]
        assert {e["actor"] for e in audit["items"]} == {"key:admin (PMS_ADMIN_API_KEY)"}

    asyncio.run(running([gateway.run, cloud.device_manager().run], scenario()))


@pytest.mark.integration
def test_a_result_published_while_device_manager_is_down_is_recorded_after_its_restart(
        cloud: Cloud, tmp_path: Path) -> None:
    gateway = collector(cloud, tmp_path, "gw-restart")
    # The gateway holds its answer until the test lets it go: device-manager is down by then.
    release = asyncio.Event()
    execute = gateway.uplink.commands

    async def held(request: CommandRequest) -> CommandResult:
        result = await execute(request)
        await release.wait()
        return result

    gateway.uplink.commands = held

    async def scenario() -> None:
        await asyncio.wait_for(gateway.link.ready.wait(), 30)
        first_stop = asyncio.Event()
        first = asyncio.create_task(cloud.device_manager().run(first_stop))
        await eventually(lambda: any(g.status == "online" for g in cloud.registry.list_gateways()), 20, "online")
        command_id = await cloud.command("gw-restart", "read_property", {"epc": "E7"}, timeout_s=60)
        await eventually(lambda: cloud.registry.get_command(command_id).state == "sent", 20,  # type: ignore[union-attr]
                         "the command sent")
        first_stop.set()
        await asyncio.wait_for(first, 20)
        release.set()  # the answer goes out while device-manager is down
        await asyncio.sleep(1.0)
        assert (await cloud.state_of("gw-restart", command_id))["state"] == "sent"
        second_stop = asyncio.Event()
        second = asyncio.create_task(cloud.device_manager().run(second_stop))
        try:
            done = await cloud.until_over("gw-restart", command_id, 20)
        finally:
            second_stop.set()
            await asyncio.wait_for(second, 20)
        assert done["state"] == "succeeded" and done["result"]["epc"] == "E7"

    asyncio.run(running([gateway.run], scenario()))


@pytest.mark.integration
def test_a_sent_command_without_an_answer_expires_after_its_deadline(cloud: Cloud, tmp_path: Path) -> None:
    gateway = collector(cloud, tmp_path, "gw-silent")
    never = asyncio.Event()

    async def silent(request: CommandRequest) -> CommandResult:
        await never.wait()  # a gateway that takes the request and never answers
        raise AssertionError("unreachable")

    gateway.uplink.commands = silent

    async def scenario() -> None:
        await eventually(lambda: any(g.status == "online" for g in cloud.registry.list_gateways()), 20, "online")
        command_id = await cloud.command("gw-silent", "rejoin", timeout_s=2)
        done = await cloud.until_over("gw-silent", command_id, 10)
        assert (done["state"], done["reason"]) == ("expired", NO_ANSWER_REASON) and done["sent_at"] is not None

    asyncio.run(running([gateway.run, cloud.device_manager().run], scenario()))


@pytest.mark.integration
def test_a_config_push_is_applied_live_and_the_full_config_is_reported_on_reconnect(
        cloud: Cloud, tmp_path: Path) -> None:
    gateway = collector(cloud, tmp_path, "gw-cfg")

    def reported() -> Any:
        return cloud.registry.config_state("gw-cfg").reported

    async def scenario() -> None:
        await eventually(lambda: reported() is not None, 20, "the first report (on connect)")
        assert reported().version == 0
        assert set(reported().document) >= {"power_interval_s", "heartbeat_interval_s", "energy_interval_s",
                                            "log_level", "applied_at"}
        status, body = await cloud.call("PUT", "/api/v1/gateways/gw-cfg/config",
                                        {"power_interval_s": 5, "energy_interval_s": 120, "log_level": "WARNING"})
        assert status == 200 and body["drift"] is True
        await eventually(lambda: reported().version == 1, 20, "version 1 reported")
        assert (gateway.config.power_interval_s, gateway.config.energy_interval_s, gateway.config.log_level) == \
            (5, 120, "WARNING")
        status, body = await cloud.call("GET", "/api/v1/gateways/gw-cfg/config")
        assert body["drift"] is False and body["desired"]["published"] is True
        assert body["reported"]["document"]["energy_interval_s"] == 120
        # The broker restarts (no persistence: the retained messages are gone); the gateway
        # reconnects and reports its whole configuration again, unasked.
        seen = reported().reported_at
        cloud.broker.stop()
        await asyncio.sleep(0.5)
        cloud.broker.start()
        await eventually(lambda: reported().reported_at > seen, 30, "a report after the reconnect")
        assert reported().version == 1 and reported().document["log_level"] == "WARNING"
        status, audit = await cloud.call("GET", "/api/v1/audit?target=gw-cfg")
        assert audit["items"][0]["outcome"].startswith("applied: version 1")

    asyncio.run(running([gateway.run, cloud.device_manager().run], scenario()))


@pytest.mark.integration
def test_a_lost_retained_desired_config_is_published_again_when_the_gateway_reports_an_older_one(
        cloud: Cloud, tmp_path: Path) -> None:
    """A broker that lost its retained messages: the gateway reconnects on its old version, and
    device-manager, seeing the report, publishes the desired one again."""
    cloud.registry.set_desired_config(["gw-late"], {"heartbeat_interval_s": 9.0},
                                      defaults={"power_interval_s": 60.0, "heartbeat_interval_s": 30.0},
                                      at=timeutil.now_jst(), by="test")
    control = GatewayControl(cloud.device_manager_address, "dm-only-control", cloud.registry, poll_s=0.2)
    cloud.gateway_urls(["gw-late"])  # its login made before the scenario's event loop runs

    async def scenario() -> None:
        await eventually(lambda: cloud.registry.config_state("gw-late").desired.published_version == 1,  # type: ignore[union-attr]
                         10, "published")
        cloud.broker.stop()  # the retained desired config is gone with it
        cloud.broker.start()
        gateway = collector(cloud, tmp_path, "gw-late")
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop))
        try:
            await eventually(lambda: (cloud.registry.config_state("gw-late").reported or _Nothing).version == 1, 30,
                             "version 1 reported after the republish")
            assert gateway.config.heartbeat_interval_s == 9
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    asyncio.run(running([control.run], scenario()))


class _Nothing:
    version = -1


@pytest.mark.integration
@pytest.mark.slow
def test_a_config_pushed_to_a_group_of_100_gateways_shows_zero_drift_once_they_report(
        cloud: Cloud, tmp_path: Path) -> None:
    base = CollectorSettings(link="sim", mqtt_url="mqtt://127.0.0.1:1", backfill_days=0, heartbeat_interval_s=30)
    # Meters installed three days back: each one's first read adds up every half hour since then.
    installed = timeutil.day_start(timeutil.now_jst().date() - timedelta(days=3))
    settings = fleet_settings(base, 100, tmp_path, installed_at=installed)
    urls = cloud.gateway_urls([s.gateway_id for s in settings])  # 100 broker logins, one per gateway
    fleet = build_fleet_from([s.model_copy(update={"mqtt_url": urls[s.gateway_id]}) for s in settings], Health())
    ids = [gw.uplink.gateway_id for gw in fleet]
    for gateway_id in ids:
        cloud.registry.bind_gateway(gateway_id, None)
        cloud.registry.set_gateway_tags(gateway_id, ["fleet100"])

    async def fleet_run(stop: asyncio.Event) -> None:
        await asyncio.gather(*(gw.run(stop) for gw in fleet))

    async def scenario() -> None:
        t0 = time.monotonic()
        # 100 simulated gateways (a virtual module each) start in this one process: minutes on 2 cores.
        await eventually(lambda: sum(s.reported is not None for s in cloud.registry.config_states(ids)) == 100, 240,
                         "every gateway's first report")
        print(f"\n100 gateways: every first report {time.monotonic() - t0:.1f} s after the start")
        started = time.monotonic()
        status, body = await cloud.call("PUT", "/api/v1/gateway-groups/fleet100/config",
                                        {"power_interval_s": 30, "heartbeat_interval_s": 20})
        assert (status, body["gateways"]) == (200, 100)
        status, group = await cloud.call("GET", "/api/v1/gateway-groups/fleet100")
        assert group["drifting"] == 100
        while True:
            status, group = await cloud.call("GET", "/api/v1/gateway-groups/fleet100")
            if group["drifting"] == 0 or time.monotonic() - started > 60:
                break
            await asyncio.sleep(0.2)
        took_s = time.monotonic() - started
        print(f"100 gateways: zero drift {took_s:.2f} s after the group push")
        assert (group["total"], group["drifting"], group["in_sync"]) == (100, 0, 100)
        assert {gw.config.heartbeat_interval_s for gw in fleet} == {20}

    asyncio.run(running([fleet_run, cloud.device_manager().run], scenario(), timeout_s=400))


@dataclass
class _Message:
    topic: str
    payload: bytes


class _Client:
    def __init__(self, messages: list[_Message]) -> None:
        self._messages = messages

    @property
    def messages(self) -> AsyncIterator[_Message]:
        async def each() -> AsyncIterator[_Message]:
            for message in self._messages:
                yield message
        return each()


def test_a_newer_gateways_reports_and_results_are_read_with_their_unknown_fields_ignored(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    control = GatewayControl(BrokerAddress.parse("mqtt://broker.invalid"), "dm-test", registry)
    now = timeutil.now_jst()
    registry.record_gateway_status("gw-1", "online", now)
    command = registry.create_command(gateway_id="gw-1", command="read_property", args={"epc": "E7"},
                                      requested_by="test", at=now, deadline=now + timedelta(seconds=60))
    registry.mark_command_sent(command.command_id, now)
    at = "2026-06-01T12:00:00+09:00"
    reported = {"v": 1, "version": 2, "power_interval_s": 5, "heartbeat_interval_s": 7, "applied_at": at,
                "meter_scale_ok": True}
    result = {"v": 1, "correlation_id": command.command_id, "ok": True, "result": {"epc": "E7"}, "at": at,
              "took_s": 0.4}
    asyncio.run(control._consume(_Client([  # type: ignore[arg-type]
        _Message("pms/v1/gw/gw-1/config/reported", json.dumps(reported).encode()),
        _Message("pms/v1/gw/gw-1/cmd/res", json.dumps(result).encode()),
        _Message("pms/v1/gw/gw-1/cmd/res", b'{"v": 1, "ok": "perhaps"}'),  # broken: counted, ignored
    ])))
    done = registry.get_command(command.command_id)
    assert done is not None and (done.state, done.result) == ("succeeded", {"epc": "E7"})
    state = registry.config_state("gw-1")
    assert state.reported is not None and state.reported.version == 2
    assert "meter_scale_ok" not in state.reported.document
    registry.close()
