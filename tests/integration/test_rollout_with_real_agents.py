"""A rollout end to end with the real pieces on both sides (issue 12, acceptance 3 beside the 200-gateway
run of tests/device_manager/test_rollouts.py, whose gateways are contract doubles):

- the image is a real collector wheel (`pms firmware build`), signed, uploaded through the API over HTTP;
- device-manager's engine drives the rollout over a Mosquitto of the test's own;
- 20 in-process gateways run the collector's real update agent (download from the API with their own
  login, signature and digest checks, trial restart, health check against a real `pms ingest`); only
  their slots are simulated (pms_collector.update_sim: installing remembers the version);
- 10 % of them fail their health check on the new version: the rollout pauses at the error threshold
  after its canary, the failed gateway is back on the old version by itself, no gateway outside the
  canary took a job; after the fix, resume continues group after group to the end.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from pms import firmware_tools
from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.settings import CollectorSettings
from pms_collector.update_sim import SimulatedSlots, run_with_simulated_updates
from pms_common import firmware, timeutil
from pms_common.health import Health
from pms_device_manager.service import DeviceManager
from pms_device_manager.settings import DeviceManagerSettings
from pms_registry import Registry
from pms_registry.provisioning import FactoryRow
from tests.browser.serving import served
from tests.collector.broker import OwnBroker
from tests.collector.waiting import eventually
from tests.conftest import PmsProcess
from tests.device_manager.test_rollouts import retained_jobs

ADMIN = "admin-e2e"
OLD, NEW = "0.1.0", "0.2.0"
SIZE = 20


@pytest.mark.integration
def test_a_rollout_to_real_update_agents_pauses_on_its_canary_and_completes_after_the_fix(tmp_path: Path) -> None:
    broker = OwnBroker(tmp_path)
    broker.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    env.update(PMS_MQTT_URL=broker.url, PMS_TSDB_URL=f"sqlite:///{tmp_path / 'ts.db'}", PMS_METRICS_PORT="0")
    ingest = PmsProcess(["ingest"], env, tmp_path, tmp_path / "ingest.log")

    keys = tmp_path / "keys"
    private_key, public_key = firmware_tools.keygen(keys)
    wheel = firmware_tools.build(NEW, tmp_path / "dist")
    manifest = firmware_tools.sign(private_key, wheel, version=NEW)

    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    app = create_app(ApiSettings(registry_url=registry_url, tsdb_url=f"sqlite:///{tmp_path / 'ts.db'}",
                                 admin_api_key=ADMIN, firmware_dir=tmp_path / "firmware", firmware_keys=[public_key]))
    registry: Registry = app.config["registry"]
    now = timeutil.now_jst()
    # The gateways as zero-config provisioning leaves them: claimed, each with its own broker password.
    serials = [f"e2e{n:04d}" for n in range(SIZE)]
    registry.import_factory_gateways([FactoryRow(serial, f"factory-secret-{serial}", f"code-{serial}")
                                      for serial in serials], now)
    passwords: dict[str, str] = {}
    for serial in serials:
        gateway_id = registry.record_claim(serial, now)
        passwords[gateway_id] = f"pw-{uuid.uuid4().hex}"
        registry.set_gateway_password(gateway_id, passwords[gateway_id], now)
        registry.set_gateway_tags(gateway_id, ["e2e"])

    with served(app) as api_url:
        def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            return httpx.request(method, api_url + path, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30,
                                 **kwargs)

        with wheel.open("rb") as image:
            uploaded = call("POST", "/api/v1/firmware", files={"image": ("image.whl", image)},
                            data={"manifest": manifest.read_text()})
        assert uploaded.status_code == 201, uploaded.text
        sha256 = uploaded.json()["sha256"]
        created = call("POST", "/api/v1/rollouts", json={
            "image": sha256, "target": {"tag": "e2e"}, "groups": [10, 50, 100], "success_threshold": 1.0,
            "error_threshold": 0.1, "error_action": "pause", "min_group_size": 2, "deadline_s": 180,
            "health_timeout_s": 10})
        assert created.status_code == 201, created.text
        rid = created.json()["rollout_id"]
        members = registry.rollout_gateways(rid)
        groups = [[m.gateway_id for m in members if m.group_index == k] for k in range(3)]
        assert [len(g) for g in groups] == [2, 8, 10]
        # 10 % fail their health check on the new version: one of the canary, one of the last group.
        failing = {groups[0][0], groups[2][0]}

        installed = timeutil.day_start(now.date() - timedelta(days=2))  # cheap simulated meters
        slots: dict[str, SimulatedSlots] = {}
        built: dict[str, Gateway] = {}
        settings: dict[str, CollectorSettings] = {}
        for gateway_id, password in passwords.items():
            settings[gateway_id] = CollectorSettings(
                gateway_id=gateway_id, link="sim", mqtt_url=f"mqtt://{gateway_id}:{password}@127.0.0.1:{broker.port}",
                outbox_path=tmp_path / f"outbox-{gateway_id}.db", power_interval_s=1, backfill_days=0,
                metrics_port=0, firmware=f"pms-collector/{OLD}", firmware_keys=[public_key],
                sim_installed_at=installed)
            slots[gateway_id] = SimulatedSlots(OLD, tmp_path / f"downloads-{gateway_id}",
                                               failing_versions={NEW} if gateway_id in failing else ())

        def build(current: CollectorSettings, own: SimulatedSlots) -> Gateway:
            gateway = build_gateway(current, SimulatedModuleLink(current), Health(), slots=own, health_filter=own.health)
            built[current.gateway_id] = gateway
            return gateway

        def running_version(gateway_id: str) -> str:
            return firmware.version_of_firmware(built[gateway_id].uplink.heartbeat().firmware)

        def member_states() -> dict[str, str]:
            return {m.gateway_id: m.state for m in registry.rollout_gateways(rid)}

        def rollout_state() -> str:
            found = registry.rollout(rid)
            assert found is not None
            return found.state

        dm_settings = DeviceManagerSettings(mqtt_url=broker.url, registry_url=registry_url,
                                            mqtt_client_id=f"dm-{uuid.uuid4().hex[:8]}", tick_s=0.5,
                                            control_poll_s=0.5, rollout_poll_s=0.2, api_public_url=api_url)

        async def scenario() -> dict[str, float]:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(run_with_simulated_updates(settings[g], slots[g], stop, build))
                     for g in passwords]
            tasks.append(asyncio.create_task(DeviceManager(dm_settings, registry, Health()).run(stop)))
            figures: dict[str, float] = {}
            started = time.monotonic()
            try:
                await eventually(lambda: rollout_state() == "paused", 120, "the rollout paused on its canary")
                figures["paused_s"] = time.monotonic() - started
                states = member_states()
                bad, good = groups[0]
                assert states[bad] == "rolled_back" and states[good] == "committed"
                reason = next(m.reason for m in registry.rollout_gateways(rid) if m.gateway_id == bad)
                assert reason is not None and "no readings batch acked by ingest" in reason
                # The failed one is back on the old version by itself; the other runs the new one.
                assert (running_version(bad), running_version(good)) == (OLD, NEW)
                assert slots[bad].running_version() == OLD
                # No gateway outside the canary was touched: no job held for it, nothing installed.
                assert set(await retained_jobs(broker.url)) <= set(groups[0])
                for gateway_id in groups[1] + groups[2]:
                    assert states[gateway_id] == "pending"
                    assert slots[gateway_id].last_outcome() is None and running_version(gateway_id) == OLD

                # The fix (the last group's failing gateway no longer fails), then resume.
                slots[groups[2][0]].failing_versions = frozenset()
                resumed = await asyncio.to_thread(call, "POST", f"/api/v1/rollouts/{rid}/resume",
                                                  json={"reason": "meter wiring fixed"})
                assert resumed.status_code == 200, resumed.text
                resumed_at = time.monotonic()
                await eventually(lambda: rollout_state() == "completed", 180, "the rollout completed")
                figures["resume_to_completed_s"] = time.monotonic() - resumed_at
                states = member_states()
                assert [g for g, s in states.items() if s != "committed"] == [bad]
                assert {g: running_version(g) for g in passwords if running_version(g) != NEW} == {bad: OLD}
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
            return figures

        try:
            figures = asyncio.run(scenario())
            print(f"\n{SIZE} real update agents: paused on the canary after {figures['paused_s']:.1f} s; "
                  f"completed {figures['resume_to_completed_s']:.1f} s after resume")
        finally:
            ingest.stop()
            app.config["store"].close()
            registry.close()
            broker.stop()
