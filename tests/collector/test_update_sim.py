"""A simulated (in-process) gateway updated as a fleet test or `pms up` would: the real update agent,
a real broker and ingest, the image downloaded and verified, and slots that only remember versions.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.settings import CollectorSettings
from pms_collector.update_sim import (
    SimulatedSlots,
    run_provisioned_with_simulated_updates,
    run_with_simulated_updates,
)
from pms_common import firmware, timeutil, topics
from pms_common.health import Health
from tests.collector.broker import OwnBroker
from tests.collector.test_software_update import ImageServer
from tests.collector.waiting import eventually
from tests.conftest import PmsProcess


@pytest.mark.parametrize("runner", ["plain", "provisioned"])
def test_a_simulated_gateway_updates_in_process_and_rolls_back_a_failing_version(tmp_path: Path, runner: str) -> None:
    """`plain`: run_with_simulated_updates; `provisioned`: through the claim flow as `pms up` runs its
    fleet (no serial here, so the configured identity), with the failing version from the settings."""
    broker = OwnBroker(tmp_path)
    broker.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    env.update(PMS_MQTT_URL=broker.url, PMS_TSDB_URL=f"sqlite:///{tmp_path / 'ts.db'}", PMS_METRICS_PORT="0")
    ingest = PmsProcess(["ingest"], env, tmp_path, tmp_path / "ingest.log")
    server = ImageServer()
    signer = firmware.load_private_key(firmware.generate_private_key_pem())
    gw = f"gw-sim{uuid.uuid4().hex[:6]}"
    reports: list[dict[str, Any]] = []
    lock = threading.Lock()
    cloud = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cloud-{gw}")

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.payload:
            with lock:
                reports.append(json.loads(message.payload))

    cloud.on_message = on_message
    cloud.connect("127.0.0.1", broker.port)
    cloud.subscribe(topics.update_state(gw), qos=1)
    cloud.loop_start()

    def publish(version: str) -> str:
        image = tmp_path / f"pms_collector-{version}-py3-none-any.whl"
        image.write_bytes(b"PK" + version.encode() * 1000)
        manifest = firmware.sign_image(signer, image, version)
        now = timeutil.now_jst()
        job_id = f"r{version}.{gw}"
        job = {"job_id": job_id, "rollout_id": f"r{version}", "version": version, "image_url": server.serve(image),
               "manifest": manifest.model_dump(mode="json"), "not_after": (now + timedelta(hours=1)).isoformat(),
               "health_timeout_s": 5, "issued_at": now.isoformat()}
        cloud.publish(topics.update_job(gw), json.dumps(job), qos=1, retain=True).wait_for_publish(5)
        return job_id

    def states(job_id: str) -> list[str]:
        with lock:
            names = [r["state"] for r in reports if r["job_id"] == job_id]
        return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]

    settings = CollectorSettings(gateway_id=gw, link="sim", mqtt_url=f"mqtt://{gw}:pw-{gw}@127.0.0.1:{broker.port}",
                                 outbox_path=tmp_path / "outbox.db", power_interval_s=1, backfill_days=0,
                                 metrics_port=0, firmware_keys=[firmware.public_key_text(signer.public_key())],
                                 sim_unhealthy_versions=["0.3.0"])
    slots = SimulatedSlots("0.1.0", tmp_path / "downloads", failing_versions={"0.3.0"})
    built: list[Gateway] = []
    versions: list[str] = []  # what each incarnation ran

    def build(current: CollectorSettings, slots: SimulatedSlots) -> Gateway:
        gateway = build_gateway(current, SimulatedModuleLink(current), Health(), slots=slots,
                                health_filter=slots.health)
        gateway.updates.health_check_s = 0.2
        built.append(gateway)
        versions.append(firmware.version_of_firmware(current.firmware))
        return gateway

    async def scenario() -> None:
        stop = asyncio.Event()
        if runner == "plain":
            running = asyncio.create_task(run_with_simulated_updates(settings, slots, stop, build))
        else:
            running = asyncio.create_task(run_provisioned_with_simulated_updates(
                settings, stop, lambda current, _refused, own_slots: build(current, own_slots)))
        try:
            good = publish("0.2.0")
            await eventually(lambda: states(good)[-1:] == ["committed"], 60, "0.2.0 committed")
            assert states(good) == ["downloading", "verifying", "installing", "restarting", "checking_health",
                                    "committed"]
            assert built[-1].uplink.heartbeat().firmware == "pms-collector/0.2.0"
            bad = publish("0.3.0")
            await eventually(lambda: states(bad)[-1:] == ["rolled_back"], 60, "0.3.0 rolled back")
            assert states(bad) == ["downloading", "verifying", "installing", "restarting", "checking_health",
                                   "rolled_back"]
            with lock:
                last = reports[-1]
            assert (last["version"], last["target_version"]) == ("0.2.0", "0.3.0")
            assert last["reason"] == "no health within 5 s: no readings batch acked by ingest"
            assert built[-1].uplink.heartbeat().firmware == "pms-collector/0.2.0"
            assert versions == ["0.1.0", "0.2.0", "0.3.0", "0.2.0"]  # the first, 0.2.0 on trial, 0.3.0 on trial, 0.2.0 again
        finally:
            stop.set()
            await asyncio.wait_for(running, 20)

    try:
        asyncio.run(scenario())
    finally:
        cloud.loop_stop()
        cloud.disconnect()
        ingest.stop()
        server.httpd.shutdown()
        broker.stop()
