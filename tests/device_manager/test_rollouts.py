"""Rollouts end to end (issue 12, acceptance 3): the API (in-process Flask) creates and resumes,
device-manager's engine drives over a Mosquitto of the test's own, and 200 simulated gateways
(tests/device_manager/update_double.py, contract 1.4) take their jobs and report.

- 10 % of the gateways fail their health check: the rollout pauses at the error threshold; the
  failed ones reported rolled_back and run the old version; only the started group got jobs
  (the broker's retained update/job topics say so); resume, after the fix, continues with the next
  group and completes — across a device-manager restart in the middle.
- A job for an offline gateway ends `expired` at its deadline and its retained job is withdrawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import firmware, timeutil, topics
from pms_common.health import Health
from pms_common.messages import UpdateJob, UpdateReport
from pms_common.mqtt import BrokerAddress
from pms_device_manager.service import DeviceManager
from pms_device_manager.settings import DeviceManagerSettings
from pms_registry import Registry
from tests.collector.broker import OwnBroker
from tests.collector.waiting import eventually
from tests.device_manager.update_double import UpdateAgentFleet

ADMIN = "admin-secret"
OLD, NEW = "1.0.0", "1.1.0"
FLEET = [f"gw-{number:03d}" for number in range(200)]


@dataclass
class Cloud:
    broker: OwnBroker
    registry: Registry
    client: FlaskClient
    dm_settings: DeviceManagerSettings
    image: str

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        def send() -> tuple[int, Any]:
            response = self.client.open(path, method=method, json=body, headers={"Authorization": f"Bearer {ADMIN}"})
            return response.status_code, response.get_json()
        return await asyncio.to_thread(send)

    def device_manager(self) -> DeviceManager:
        return DeviceManager(self.dm_settings, self.registry, Health())

    def state(self, rollout_id: str) -> str:
        found = self.registry.rollout(rollout_id)
        assert found is not None
        return found.state


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    broker = OwnBroker(tmp_path)
    broker.start()
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN))
    registry: Registry = app.config["registry"]
    image = tmp_path / "pms_collector-1.1.0-py3-none-any.whl"
    image.write_bytes(b"not really a wheel" * 100)
    manifest = firmware.sign_image(firmware.load_private_key(firmware.generate_private_key_pem()), image, NEW)
    registry.add_firmware_image(manifest.model_dump(mode="json"), timeutil.now_jst(), "test")
    now = timeutil.now_jst()
    for gateway_id in [*FLEET, "gw-offline"]:
        registry.record_gateway_status(gateway_id, "online", now)
        registry.set_gateway_tags(gateway_id, ["fleet" if gateway_id in FLEET else "far"])
    settings = DeviceManagerSettings(mqtt_url=broker.url, registry_url=f"sqlite:///{tmp_path}/r.db",
                                     mqtt_client_id=f"dm-{uuid.uuid4().hex[:8]}", tick_s=0.5, control_poll_s=0.5,
                                     rollout_poll_s=0.2, api_public_url="https://pms.example/")
    try:
        yield Cloud(broker, registry, app.test_client(), settings, manifest.sha256)
    finally:
        app.config["store"].close()
        registry.close()
        broker.stop()


async def retained_jobs(broker_url: str) -> dict[str, UpdateJob]:
    """Every update job the broker holds retained (what a gateway connecting now would get)."""
    found: dict[str, UpdateJob] = {}
    async with BrokerAddress.parse(broker_url).client(identifier=f"probe-{uuid.uuid4().hex[:6]}") as client:
        await client.subscribe(topics.gateway("+", "update/job"), qos=1)

        async def collect() -> None:
            async for message in client.messages:
                parts = topics.split_gateway_topic(str(message.topic))
                if parts is not None and isinstance(message.payload, bytes) and message.payload:
                    found[parts[0]] = UpdateJob.model_validate_json(message.payload)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(collect(), 1.0)  # retained messages come at once on subscribing
    return found


def metric(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.integration
def test_a_rollout_pauses_at_the_error_threshold_resumes_after_the_fix_and_completes(cloud: Cloud) -> None:
    fleet = UpdateAgentFleet(cloud.broker.url, FLEET, version=OLD, step_s=0.05)
    timings: dict[str, float] = {}

    async def scenario(stop: asyncio.Event) -> None:
        await asyncio.wait_for(fleet.ready.wait(), 10)
        first_stop = asyncio.Event()
        first = asyncio.create_task(cloud.device_manager().run(first_stop))
        started = time.monotonic()
        status, body = await cloud.call("POST", "/api/v1/rollouts", {
            "image": cloud.image, "target": {"tag": "fleet"}, "groups": [10, 40, 100], "success_threshold": 0.95,
            "error_threshold": 0.05, "error_action": "pause", "min_group_size": 5, "deadline_s": 20,
            "health_timeout_s": 5})
        assert status == 201, body
        rid = body["rollout_id"]
        members = cloud.registry.rollout_gateways(rid)
        assert [len([m for m in members if m.group_index == k]) for k in range(3)] == [20, 60, 120]
        # 10 % fail their health check: every tenth in the rollout's order, so 2 of the canary's 20.
        failing = {m.gateway_id for m in members[::10]}
        for gateway_id in failing:
            fleet.gateways[gateway_id].fails_health_check = True
        canary = {m.gateway_id for m in members if m.group_index == 0}

        await eventually(lambda: cloud.state(rid) == "paused", 30, "the rollout paused")
        timings["paused_s"] = time.monotonic() - started
        paused = cloud.registry.rollout(rid)
        assert paused is not None and paused.current_group == 0
        assert paused.state_reason is not None and "error threshold 5%" in paused.state_reason
        # The canary's gateways mid-update go on; then each is committed or rolled back.
        await eventually(lambda: all(m.state in ("committed", "rolled_back")
                                     for m in cloud.registry.rollout_gateways(rid, 0)), 30, "the canary finished")
        canary_end = {m.gateway_id: m for m in cloud.registry.rollout_gateways(rid, 0)}
        rolled_back = {gw for gw, m in canary_end.items() if m.state == "rolled_back"}
        assert rolled_back == failing & canary and len(rolled_back) == 2
        for gateway_id in rolled_back:
            member = canary_end[gateway_id]
            assert (member.version, member.from_version, fleet.gateways[gateway_id].version) == (OLD, OLD, OLD)
            assert member.reason == "health check failed: no readings acked by ingest"
        assert {m.version for gw, m in canary_end.items() if gw not in rolled_back} == {NEW}
        # No gateway outside the started group was touched: no job retained for it, none taken.
        retained = await retained_jobs(cloud.broker.url)
        assert set(retained) == canary
        assert {gw for gw, g in fleet.gateways.items() if g.jobs_taken} == canary
        job = retained[next(iter(canary))]
        assert job.image_url == f"https://pms.example/api/v1/firmware/{cloud.image}/image"
        assert (job.version, job.manifest["sha256"], job.health_timeout_s) == (NEW, cloud.image, 5)
        assert job.job_id == f"{rid}.{next(iter(canary))}"
        assert [e.kind for e in cloud.registry.list_events()][:1] == ["rollout_paused"]
        assert set(cloud.registry.list_events()[0].params) == {"rollout_id", "version", "reason"}
        assert cloud.registry.list_audit(target=rid, action="rollout_pause")[0][0].actor == "device-manager"
        # Paused: nothing new goes out, however long it stays paused.
        await asyncio.sleep(1.0)
        assert cloud.registry.rollout_groups(rid)[1].counts == {"pending": 60}

        for gateway_id in failing:  # the fix: their health checks pass from now on
            fleet.gateways[gateway_id].fails_health_check = False
        status, body = await cloud.call("POST", f"/api/v1/rollouts/{rid}/resume", {})
        assert status == 200 and body["errors_accepted"] == 2, body
        await eventually(lambda: sum(n for state, n in cloud.registry.rollout_groups(rid)[2].counts.items()
                                     if state not in ("pending", "queued")) >= 20, 30, "the last group under way")
        # device-manager stops mid-rollout; reports go on while it is down; a new one carries on.
        first_stop.set()
        await asyncio.wait_for(first, 20)
        down_at = cloud.registry.rollout_groups(rid)[2].counts
        await asyncio.sleep(0.5)
        second_stop = asyncio.Event()
        second = asyncio.create_task(cloud.device_manager().run(second_stop))
        await eventually(lambda: cloud.state(rid) == "completed", 60, "the rollout completed")
        timings["completed_s"] = time.monotonic() - started
        second_stop.set()
        await asyncio.wait_for(second, 20)

        final = {m.gateway_id: m for m in cloud.registry.rollout_gateways(rid)}
        assert {gw for gw, m in final.items() if m.state != "committed"} == rolled_back
        assert all(fleet.gateways[gw].version == (OLD if gw in rolled_back else NEW) for gw in FLEET)
        assert sum(1 for gw in FLEET if fleet.gateways[gw].jobs_taken) == 200
        assert all(len(g.jobs_taken) == 1 for g in fleet.gateways.values())  # none taken twice
        assert await retained_jobs(cloud.broker.url) == {}  # cleared once the rollout completed
        detail_status, detail = await cloud.call("GET", f"/api/v1/rollouts/{rid}")
        assert detail_status == 200 and detail["counts"] == {"committed": 198, "rolled_back": 2}
        print(f"\n200 gateways: paused after {timings['paused_s']:.1f} s, completed after "
              f"{timings['completed_s']:.1f} s (group 3 when device-manager stopped: {down_at})")
        stop.set()

    async def main() -> None:
        stop = asyncio.Event()
        agents = asyncio.create_task(fleet.run(stop))
        try:
            await asyncio.wait_for(scenario(stop), 120)
        finally:
            stop.set()
            await asyncio.wait_for(agents, 10)

    asyncio.run(main())


@pytest.mark.integration
def test_a_job_for_an_offline_gateway_expires_at_its_deadline_and_is_withdrawn(cloud: Cloud) -> None:
    bad_before = metric("pms_device_manager_rollout_reports_total", {"outcome": "unknown"})

    async def scenario() -> None:
        stop = asyncio.Event()
        manager = asyncio.create_task(cloud.device_manager().run(stop))
        status, body = await cloud.call("POST", "/api/v1/rollouts", {
            "image": cloud.image, "target": {"gateways": ["gw-offline"]}, "groups": [100], "min_group_size": 1,
            "deadline_s": 1.5, "health_timeout_s": 5})
        assert status == 201, body
        rid = body["rollout_id"]
        await eventually(lambda: cloud.registry.rollout_gateway(rid, "gw-offline").state == "queued",  # type: ignore[union-attr]
                         10, "the job sent")
        assert set(await retained_jobs(cloud.broker.url)) == {"gw-offline"}
        await eventually(lambda: cloud.registry.rollout_gateway(rid, "gw-offline").state == "expired",  # type: ignore[union-attr]
                         10, "the job expired")
        member = cloud.registry.rollout_gateway(rid, "gw-offline")
        assert member is not None and member.sent_at is not None
        waited = (member.state_since - member.sent_at).total_seconds()
        assert 1.5 <= waited < 2.5, waited  # at its deadline (1.5 s after sending; planned every 0.2 s)
        assert "did not start the job within 1.5 s" in (member.reason or "")
        assert await retained_jobs(cloud.broker.url) == {}  # withdrawn: a gateway connecting now gets nothing
        # A report for a job no rollout knows is counted and ignored.
        async with BrokerAddress.parse(cloud.broker.url).client(identifier="stray") as client:
            stray = UpdateReport(gateway_id="gw-offline", job_id="ro-deadbeef.gw-offline", state="committed",
                                 version=NEW, target_version=NEW, at=timeutil.now_jst())
            await client.publish(topics.update_state("gw-offline"), stray.to_json(), qos=1, retain=True)
        await eventually(lambda: metric("pms_device_manager_rollout_reports_total", {"outcome": "unknown"})
                         > bad_before, 10, "the stray report counted")
        assert cloud.registry.rollout_gateway(rid, "gw-offline").state == "expired"  # type: ignore[union-attr]
        # Its one member expired: 100 % of the started group in error, so the rollout paused.
        await eventually(lambda: cloud.state(rid) == "paused", 10, "the rollout paused")
        print(f"\noffline gateway: expired {waited:.2f} s after its job was sent (deadline 1.5 s)")
        stop.set()
        await asyncio.wait_for(manager, 20)

    asyncio.run(asyncio.wait_for(scenario(), 60))




@pytest.mark.integration
def test_cancel_withdraws_the_jobs_not_started_and_cancels_the_gateways_never_sent_one(cloud: Cloud) -> None:
    offline = FLEET[:5]  # no agent answers: their jobs stay queued

    async def scenario() -> None:
        stop = asyncio.Event()
        manager = asyncio.create_task(cloud.device_manager().run(stop))
        status, body = await cloud.call("POST", "/api/v1/rollouts", {
            "image": cloud.image, "target": {"gateways": offline}, "groups": [40, 100], "deadline_s": 600})
        assert status == 201, body
        rid = body["rollout_id"]
        first = {m.gateway_id for m in cloud.registry.rollout_gateways(rid, 0)}
        await eventually(lambda: cloud.registry.rollout_groups(rid)[0].counts == {"queued": 2}, 10, "2 jobs sent")
        assert set(await retained_jobs(cloud.broker.url)) == first
        status, body = await cloud.call("POST", f"/api/v1/rollouts/{rid}/cancel", {"reason": "wrong image"})
        assert status == 200 and body["state"] == "cancelled", body
        await eventually(lambda: all(m.state == "cancelled" for m in cloud.registry.rollout_gateways(rid)), 10,
                         "every gateway cancelled")
        assert await retained_jobs(cloud.broker.url) == {}
        assert {m.reason for m in cloud.registry.rollout_gateways(rid)} == {"wrong image"}
        assert cloud.registry.rollouts_to_drive() == []
        stop.set()
        await asyncio.wait_for(manager, 20)

    asyncio.run(asyncio.wait_for(scenario(), 60))
