"""A staged rollout to a fleet of simulated gateways: time to each group's completion and in total,
update reports/s, and device-manager's peak memory.

    .venv/bin/python bench/rollout.py [--gateways 1000] [--groups 1,10,100] [--step-s 0.2]
                                      [--poll-s 1.0] [--per-connection 1] [--timeout 900]

Starts its own Mosquitto on a free port (deploy/mosquitto/test-broker.conf) and `pms device-manager`
as its own process, whose rollout engine (pms_device_manager.rollouts) drives the rollout over a
fresh SQLite registry: the registry holds `--gateways` gateways, a signed image, and a rollout to
all of them in `--groups` (cumulative percents: 1 % canary, then 10 %, then the rest), success
threshold 95 %, error threshold 5 %, at least 5 finished before the thresholds apply, window "any".

The gateways are simulated in this process, following the update contract (pms_common.messages
UpdateJob / UpdateReport, retained QoS 1): each subscribes to its update/job over MQTT (its own
connection, or `--per-connection` gateways sharing one) and, on a job, reports downloading →
verifying → installing → restarting → checking_health → committed, `--step-s` apart; nothing is
downloaded or installed. The collector's real update agent (with simulated slots, which download,
verify and restart for real) is shown end to end with 20 gateways in
tests/integration/test_rollout_with_real_agents.py; a thousand of them in one process would measure
the simulated meters, not the rollout. The bench watches the registry as the console does and prints, for each group,
when it started and when its last member finished, counted from the rollout's creation; the total;
the reports per second device-manager recorded (its own counter, scraped from /metrics); and the
peak resident memory of device-manager and of Mosquitto (sampled every 0.1 s from /proc).

The figures measure the cloud side: with `--step-s 0.2` a gateway takes ~1.2 s, where a real one
takes minutes, so the time is the engine's planning (one pass per `--poll-s`) and its MQTT and
registry work, not the gateways'.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from _support import (
    REPO,
    cpu_seconds,
    end_cleanly_on_sigterm,
    process_family,
    rss_mb,
    start_mosquitto,
    stop_process,
    wait_port,
)

from pms_common import timeutil, topics
from pms_common.firmware import generate_private_key_pem, load_private_key, sign_image
from pms_common.messages import UpdateJob, UpdateReport
from pms_common.mqtt import BrokerAddress
from pms_common.ports import listener_port
from pms_registry import Registry
from pms_registry.rollouts import FINAL_MEMBER_STATES

FROM_VERSION = "1.0.0"
TO_VERSION = "1.1.0"
STEPS = ("downloading", "verifying", "installing", "restarting", "checking_health", "committed")


# ---- the simulated fleet ---------------------------------------------------------------------------
@dataclass
class Fleet:
    """Gateways that follow the update contract; they count what they publish."""

    gateway_ids: list[str]
    port: int
    step_s: float
    per_connection: int
    published: int = 0
    jobs: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _running: dict[str, str] = field(default_factory=dict)  # gateway → job it has started
    _versions: dict[str, str] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        slices = [self.gateway_ids[i:i + self.per_connection]
                  for i in range(0, len(self.gateway_ids), self.per_connection)]
        ready = [asyncio.Event() for _ in slices]
        tasks = [asyncio.create_task(self._connection(number, ids, flag, stop))
                 for number, (ids, flag) in enumerate(zip(slices, ready, strict=True))]
        all_ready = asyncio.create_task(asyncio.wait([asyncio.create_task(flag.wait()) for flag in ready]))
        await asyncio.wait([all_ready, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                raise RuntimeError("a simulated gateway's connection ended") from task.exception()
        self.connected.set()
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _connection(self, number: int, gateway_ids: list[str], ready: asyncio.Event,
                          stop: asyncio.Event) -> None:
        broker = BrokerAddress.parse(f"mqtt://127.0.0.1:{self.port}")
        async with broker.client(identifier=f"bench-gw-{number}", clean_session=True) as client:
            for gateway_id in gateway_ids:
                self._versions[gateway_id] = FROM_VERSION
                await client.subscribe(topics.update_job(gateway_id), qos=1)
            ready.set()
            steps: set[asyncio.Task[None]] = set()
            reader = asyncio.create_task(self._read(client, steps))
            await stop.wait()
            reader.cancel()
            for task in steps:
                task.cancel()

    async def _read(self, client: aiomqtt.Client, steps: set[asyncio.Task[None]]) -> None:
        async for message in client.messages:
            gateway_id = str(message.topic).split("/")[3]
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if not payload:
                continue  # withdrawn: this bench's gateways are done by then, or never got one
            job = UpdateJob.model_validate_json(payload)
            if self._running.get(gateway_id) == job.job_id:
                continue  # the retained job again (a re-subscription): taken once
            self._running[gateway_id] = job.job_id
            self.jobs += 1
            task = asyncio.create_task(self._update(client, gateway_id, job))
            steps.add(task)
            task.add_done_callback(steps.discard)

    async def _update(self, client: aiomqtt.Client, gateway_id: str, job: UpdateJob) -> None:
        for state in STEPS:
            if state == "checking_health":
                self._versions[gateway_id] = job.version  # restarted into the new slot
            report = UpdateReport(gateway_id=gateway_id, job_id=job.job_id, state=state,  # type: ignore[arg-type]
                                  version=self._versions[gateway_id], target_version=job.version,
                                  at=timeutil.now_jst())
            await client.publish(topics.update_state(gateway_id), report.to_json(), qos=1, retain=True)
            self.published += 1
            if state != "committed":
                await asyncio.sleep(self.step_s)


def run_fleet(fleet: Fleet, stop: threading.Event, ready: threading.Event) -> None:
    async def main() -> None:
        stopping = asyncio.Event()
        task = asyncio.create_task(fleet.run(stopping))
        connected = asyncio.create_task(fleet.connected.wait())
        await asyncio.wait([task, connected], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what ended the fleet
        ready.set()
        await asyncio.to_thread(stop.wait)
        stopping.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())


# ---- the registry ---------------------------------------------------------------------------------
def seed(registry: Registry, count: int, workdir: Path) -> tuple[list[str], str]:
    """`count` gateways of one customer's plant and a signed image; (gateway ids, image digest)."""
    now = timeutil.now_jst()
    registry.ensure_customer("C-BENCH", "bench")
    plant = registry.create_plant(customer_id="C-BENCH", name="bench", address="-", phone="-", created_at=now,
                                  latitude=35.68, longitude=139.77)
    gateway_ids = [f"gw-bench-{n:05d}" for n in range(count)]
    for gateway_id in gateway_ids:
        registry.record_gateway_status(gateway_id, "online", now)
        registry.bind_gateway(gateway_id, plant, at=now)
    image = workdir / f"pms_collector-{TO_VERSION}-py3-none-any.whl"
    image.write_bytes(os.urandom(64 * 1024))
    manifest = sign_image(load_private_key(generate_private_key_pem()), image, TO_VERSION, min_version=FROM_VERSION,
                          at=now)
    registry.add_firmware_image(manifest.model_dump(mode="json"), now, "bench")
    return gateway_ids, manifest.sha256


def reports_recorded(metrics_port: int) -> float:
    """device-manager's count of update reports it recorded (outcome "recorded")."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    found = re.search(r'^pms_device_manager_rollout_reports_total\{outcome="recorded"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def start_device_manager(workdir: Path, registry_url: str, port: int, metrics_port: int,
                         poll_s: float) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    env.update({"PMS_MQTT_URL": f"mqtt://127.0.0.1:{port}", "PMS_REGISTRY_URL": registry_url,
                "PMS_METRICS_PORT": str(metrics_port), "PMS_MQTT_CLIENT_ID": "bench-device-manager",
                "PMS_ROLLOUT_POLL_S": str(poll_s), "PMS_API_PUBLIC_URL": "http://127.0.0.1:9",
                "PMS_LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO)})
    log = workdir / "device-manager.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pms.cli", "device-manager"], env=env, cwd=workdir,
                                stdout=out, stderr=subprocess.STDOUT)
    wait_port(metrics_port, proc, log, "device-manager")
    return proc


def main() -> None:
    end_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--groups", default="1,10,100", help="cumulative percents of the fleet")
    parser.add_argument("--step-s", type=float, default=0.2, help="time a simulated gateway spends in each state")
    parser.add_argument("--poll-s", type=float, default=1.0, help="device-manager's rollout_poll_s")
    parser.add_argument("--per-connection", type=int, default=1, help="simulated gateways per MQTT connection")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    # Gateways sharing a connection queue their publishes behind its in-flight window, and aiomqtt
    # says so for each one past ten: expected here, and the figures say what it costs.
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    group_sizes = [float(size) for size in args.groups.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="pms-bench-rollout-"))
    broker, port = start_mosquitto(workdir)
    registry_url = f"sqlite:///{workdir}/registry.db"
    registry = Registry(registry_url)
    registry.migrate()
    started = time.monotonic()
    gateway_ids, sha256 = seed(registry, args.gateways, workdir)
    print(f"registry: {args.gateways} gateways and a signed image in {time.monotonic() - started:.1f} s")

    fleet = Fleet(gateway_ids, port, args.step_s, args.per_connection)
    fleet_stop, fleet_ready = threading.Event(), threading.Event()
    fleet_thread = threading.Thread(target=run_fleet, args=(fleet, fleet_stop, fleet_ready), daemon=True)
    started = time.monotonic()
    fleet_thread.start()
    if not fleet_ready.wait(300):
        raise SystemExit("the simulated fleet did not connect within 300 s")
    connections = -(-args.gateways // args.per_connection)
    print(f"fleet: {args.gateways} simulated gateways on {connections} MQTT connections, subscribed in "
          f"{time.monotonic() - started:.1f} s")

    metrics_port = listener_port()
    manager = start_device_manager(workdir, registry_url, port, metrics_port, args.poll_s)
    peaks = {"device-manager": 0.0, "mosquitto": 0.0}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            for name, proc in (("device-manager", manager), ("mosquitto", broker)):
                peaks[name] = max(peaks[name], rss_mb(process_family(proc.pid)))
            sampling.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        created_at = timeutil.now_jst()
        rollout = registry.create_rollout(
            image_sha256=sha256, version=TO_VERSION, target={"customer": "C-BENCH"}, group_sizes=group_sizes,
            success_threshold=0.95, error_threshold=0.05, error_action="pause", min_group_size=5,
            deadline_s=600.0, health_timeout_s=60.0, window="any", created_by="bench", at=created_at)
        t0 = time.monotonic()
        cpu_before = {"device-manager": cpu_seconds(process_family(manager.pid)),
                      "mosquitto": cpu_seconds([broker.pid]), "bench (the fleet)": time.process_time()}
        group_started: dict[int, float] = {0: 0.0}
        group_done: dict[int, float] = {}
        sizes: dict[int, int] = {}
        state = rollout.state
        while time.monotonic() - t0 < args.timeout:
            found = registry.rollout(rollout.rollout_id)
            assert found is not None
            state = found.state
            elapsed = time.monotonic() - t0
            for group in registry.rollout_groups(rollout.rollout_id):
                sizes[group.group_index] = group.total
                if group.started:
                    group_started.setdefault(group.group_index, elapsed)
                finished = sum(n for s, n in group.counts.items() if s in FINAL_MEMBER_STATES)
                if group.started and finished == group.total:
                    group_done.setdefault(group.group_index, elapsed)
            if state != "running":
                break
            time.sleep(0.1)
        total_s = time.monotonic() - t0
        recorded = reports_recorded(metrics_port)
        cpu_after = {"device-manager": cpu_seconds(process_family(manager.pid)),
                     "mosquitto": cpu_seconds([broker.pid]), "bench (the fleet)": time.process_time()}
        counts: dict[str, int] = {}
        for group in registry.rollout_groups(rollout.rollout_id):
            for member_state, count in group.counts.items():
                counts[member_state] = counts.get(member_state, 0) + count
    finally:
        sampling.set()
        sampler.join(5)
        stop_process(manager)
        fleet_stop.set()
        fleet_thread.join(40)
        stop_process(broker)
        registry.close()

    print(f"rollout {rollout.rollout_id}: {state} after {total_s:.1f} s "
          f"(groups {args.groups} %, engine pass every {args.poll_s} s, {args.step_s} s per gateway state)")
    for index in sorted(group_started):
        done = group_done.get(index)
        print(f"  group {index + 1} ({sizes.get(index, 0)} gateways): started at {group_started[index]:6.1f} s, "
              + (f"all finished at {done:6.1f} s" if done is not None else "NOT finished"))
    print(f"  members by state: {dict(sorted(counts.items()))}")
    print(f"  jobs taken by the fleet: {fleet.jobs}; reports published: {fleet.published}, recorded by "
          f"device-manager: {recorded:.0f} = {recorded / total_s:.1f} reports/s over the rollout")
    print("  CPU during the rollout: " + ", ".join(f"{name} {cpu_after[name] - cpu_before[name]:.1f} s"
                                                   for name in cpu_before) + f" (of {total_s:.1f} s, 2 cores shared)")
    print(f"  peak RSS: device-manager {peaks['device-manager']:.0f} MB, mosquitto {peaks['mosquitto']:.0f} MB")


if __name__ == "__main__":
    main()
