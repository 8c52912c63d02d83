"""A fleet of simulated gateways against a broker of its own, `pms ingest` and a real influxd.

    .venv/bin/python bench/fleet.py [--gateways 1000] [--speedup 10] [--duration 60] [--outage 10]
                                    [--gateways-per-process 2500] [--json]
    .venv/bin/python bench/fleet.py --broker nats --ingest-replicas 2 --ramp 30 ...

Everything runs on loopback and ends by itself. The bench starts:

- Mosquitto on a free port with the production config (deploy/mosquitto/mosquitto.conf: auth, the
  ACL, persistence, queue limits) and a password file made by `mosquitto_passwd -U`: every gateway
  logs in with its own id and password, and the ACL lets it touch only `pms/v1/gw/{its id}/#`;
  (`--broker nats`: bench/nats_cluster.py's 3 nodes, one user per gateway, and ingest on the
  JetStream source with PMS_NATS_URL naming all three, as the NATS path runs in production);
- influxd (Debian's InfluxDB 1.x) with its data in a temp dir, and `--ingest-replicas` (1) `pms ingest`
  writing to it;
- simulator processes of `--gateways-per-process` gateways each. A gateway is the collector's own
  durable outbox (SQLite, on tmpfs: one machine's disk stands in for thousands) and its own uplink
  (presence with a last will, heartbeats, the in-order pump with acks and resends, reconnect with
  backoff), one aiomqtt connection each, many gateways per asyncio loop. Each appends a power reading
  every 60 s and a slot's registers every 30 minutes, of simulated time: `--speedup` makes them come
  that many times faster than real time (heartbeats and keepalives keep their real intervals).

Then it measures, in order: the time until every gateway is connected; over `--duration` seconds of
steady running, the readings stored per second (ingest's counter), publish → queryable (the bench
polls the store for the newest power reading of 1 % of the gateways, the probes, and matches it to
when the uplink first published it; the figure includes up to one poll interval), and the CPU and
resident memory of each process (broker, ingest, influxd, simulators); then it stops the broker
(SIGTERM) for `--outage` seconds while the gateways go on reading into their outboxes, starts it
again (up once it serves: Mosquitto listening; NATS every node with JetStream on and a meta leader),
and times until all gateways are connected again and every batch held at the restart is acked (the
drain); on NATS it then reports when every node's full /healthz is ok again; last it stops the
readings, waits until every outbox is empty, and counts every power reading and every slot of every
gateway in the store: lost must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
from _support import (
    REPO,
    BenchError,
    cpu_seconds,
    end_cleanly_on_sigterm,
    process_family,
    production_broker_config,
    raise_open_files_limit,
    rss_mb,
    start_influxd,
    stop_process,
    wait_port,
)

from pms_collector.outbox import Outbox
from pms_collector.readings_json import encode_readings
from pms_collector.uplink import IncomingMessage, MqttClient, Uplink
from pms_common import topics
from pms_common.health import Health
from pms_common.messages import (
    CommandRequest,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    EnergyReading,
    Heartbeat,
    PowerReading,
)
from pms_common.mqtt import BrokerAddress
from pms_common.ports import listener_port
from pms_common.timeutil import JST, now_jst

T0 = datetime(2026, 1, 5, tzinfo=JST)  # simulated time starts here (a slot end)
POWER_INTERVAL_S = 60.0
SLOT_S = 1800.0
POWERS_PER_SLOT = int(SLOT_S / POWER_INTERVAL_S)
SLOT_KWH = 0.25
PROBE_EVERY = 100  # every 100th gateway is a probe of publish -> queryable
DATABASE = "pms_fleet"


def gateway_id(g: int) -> str:
    return f"fleet-{g:05d}"


def gateway_password(secret: str, gid: str) -> str:
    """Each gateway's own password, derived so the simulators need only the bench's secret."""
    return hmac.new(secret.encode(), gid.encode(), hashlib.sha256).hexdigest()[:24]


# =================================================================================================
# The simulators (a process of many gateways)
# =================================================================================================


class StillConfig:
    """The configuration a simulated gateway reports; pushes of another are not applied."""

    def __init__(self, heartbeat_interval_s: float) -> None:
        self.reported = ConfigReported(version=0, power_interval_s=POWER_INTERVAL_S,
                                       heartbeat_interval_s=heartbeat_interval_s, applied_at=now_jst())

    def apply_config(self, desired: ConfigDesired) -> ConfigReported | None:
        return None

    def reported_config(self) -> ConfigReported:
        return self.reported


class PublishTimes:
    """An aiomqtt client that notes when each readings batch was first published (the probes')."""

    def __init__(self, client: aiomqtt.Client, readings_topic: str, first_published: dict[int, float]) -> None:
        self._client = client
        self._readings_topic = readings_topic
        self._first_published = first_published

    @property
    def pending_calls_threshold(self) -> int:
        return self._client.pending_calls_threshold

    @pending_calls_threshold.setter
    def pending_calls_threshold(self, value: int) -> None:
        self._client.pending_calls_threshold = value

    @property
    def messages(self) -> AsyncIterator[IncomingMessage]:
        return self._client.messages  # type: ignore[return-value]

    async def subscribe(self, topic: list[tuple[str, int]], /) -> object:
        return await self._client.subscribe(topic)

    async def publish(self, topic: str, /, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        if topic == self._readings_topic:
            seq = int(payload.split(b'"seq":', 1)[1].split(b",", 1)[0])
            self._first_published.setdefault(seq, time.time())
        await self._client.publish(topic, payload, qos=qos, retain=retain)


class SimGateway:
    """One gateway: the collector's outbox and uplink, fed readings on the simulated clock."""

    def __init__(self, g: int, *, broker: BrokerAddress, outbox_dir: Path, health: Health,
                 heartbeat_interval_s: float, probe: bool, operation_timeout_s: float) -> None:
        self.g = g
        self.operation_timeout_s = operation_timeout_s
        self.gateway_id = gateway_id(g)
        self.outbox = Outbox(outbox_dir / f"{self.gateway_id}.db", max_batches=200_000)
        self.broker = broker
        self.started = time.monotonic()
        self.heartbeat_interval_s = heartbeat_interval_s
        self.batch_stored = asyncio.Event()
        self.powers = 0  # power readings appended (reading k is at T0 + k minutes + the gateway's offset)
        self.slots = 0  # slots appended
        self.last_seq = 0
        self.backlog_mark: int | None = None  # the last seq appended when the broker came back
        self.probe = probe
        self.measured_at: dict[int, float] = {}  # probes: seq -> its power reading's time (epoch s)
        self.first_published: dict[int, float] = {}  # probes: seq -> wall time of its first publish
        self.uplink = Uplink(
            self.outbox, heartbeat=self._beat, commands=self._command,
            config=StillConfig(heartbeat_interval_s), batch_stored=self.batch_stored, health=health,
            gateway_id=self.gateway_id, broker=broker, client_id=self.gateway_id, max_in_flight=50,
            resend_timeout_s=15.0, connect=self._connect)

    @asynccontextmanager
    async def _connect(self, will: aiomqtt.Will) -> AsyncIterator[MqttClient]:
        """The collector's own client (BrokerAddress.client), with the bench's operation timeout."""
        client = self.broker.client(identifier=self.gateway_id, will=will, clean_session=True)
        client.timeout = self.operation_timeout_s
        async with client:
            yield PublishTimes(client, topics.readings(self.gateway_id), self.first_published) if self.probe else client

    def _beat(self) -> Heartbeat:
        return Heartbeat(gateway_id=self.gateway_id, at=now_jst(), uptime_s=time.monotonic() - self.started,
                         firmware="fleet-bench", module_family="sim", read_errors_total=0,
                         outbox_depth=self.last_seq - self.uplink.batches_acked,
                         power_interval_s=POWER_INTERVAL_S, heartbeat_interval_s=self.heartbeat_interval_s)

    async def _command(self, request: CommandRequest) -> CommandResult:
        return CommandResult(correlation_id=request.correlation_id, ok=False, error="a simulated gateway",
                             at=now_jst())

    def offset_s(self) -> float:
        """Gateways read at different seconds of the minute, as a real fleet does."""
        return float(self.g % int(POWER_INTERVAL_S))

    def append_next(self) -> None:
        """Append power reading number `powers` (and, every 30 readings, the slot that ends with it)."""
        k = self.powers
        measured_at = T0 + timedelta(seconds=k * POWER_INTERVAL_S + self.offset_s())
        readings: list[PowerReading | EnergyReading] = [PowerReading(measured_at=measured_at, power_w=-(500 + k % 97))]
        slots: list[EnergyReading] = []
        if k % POWERS_PER_SLOT == 0:
            slot = EnergyReading(slot_end=T0 + timedelta(seconds=(k // POWERS_PER_SLOT) * SLOT_S),
                                 forward_kwh=10.0, reverse_kwh=round(1000.0 + self.g + self.slots * SLOT_KWH, 3))
            readings.append(slot)
            slots.append(slot)
        self.last_seq = self.outbox.append(encode_readings(readings), has_energy=bool(slots), now=time.time(),
                                           slots=slots)
        if self.probe:
            self.measured_at[self.last_seq] = measured_at.timestamp()
        self.powers += 1
        self.slots += len(slots)
        self.batch_stored.set()

    async def produce(self, epoch: float, speedup: float, producing: asyncio.Event) -> None:
        """Append readings when they fall due on the simulated clock, until `producing` is cleared."""
        while producing.is_set():
            due = epoch + (self.powers * POWER_INTERVAL_S + self.offset_s()) / speedup
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if producing.is_set():
                self.append_next()

    def held(self) -> list[int]:
        """Power readings and slots still in the outbox (not acked: not lost either, not yet stored)."""
        kinds = [reading["kind"] for batch in self.outbox.pending(limit=1_000_000)
                 for reading in json.loads(batch.readings_json)]
        return [kinds.count("power"), kinds.count("energy")]

    def backlog_drained(self) -> bool:
        return self.backlog_mark is None or self.outbox.floor_seq() > self.backlog_mark


async def simulate(args: argparse.Namespace) -> None:
    """Run gateways first..first+count-1; status lines on stdout, commands on stdin (mark, stop)."""
    # Warnings (a lost connection and why) go to the simulator's log file in the work dir.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    secret = os.environ["PMS_FLEET_SECRET"]
    ports = [int(p) for p in args.broker_ports.split(",")]
    outbox_dir = Path(args.outbox_dir)  # made by main()
    health = Health()
    gateways = []
    for g in range(args.first, args.first + args.count):
        gid = gateway_id(g)
        broker = BrokerAddress(host="127.0.0.1", port=ports[g % len(ports)], username=gid,
                               password=gateway_password(secret, gid))
        gateways.append(SimGateway(g, broker=broker, outbox_dir=outbox_dir, health=health,
                                   heartbeat_interval_s=args.heartbeat_interval, probe=g % PROBE_EVERY == 0,
                                   operation_timeout_s=args.gateway_timeout))
    # Thousands of gateways' objects live as long as the process: kept out of the collector's full
    # passes, which otherwise stall the loop for seconds on a busy machine (seen: 15 s, past aiomqtt's
    # 10 s timeout, so gateways dropped their connections). Frozen again once all are connected.
    gc.freeze()
    stop, producing = asyncio.Event(), asyncio.Event()
    producing.set()
    epoch = time.time()
    async def run_uplink(gw: SimGateway, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        await gw.uplink.run(stop)

    # Spread over --ramp seconds (a fleet joining), or all dialling at once (0: a worst case).
    uplinks = [asyncio.create_task(run_uplink(gw, args.ramp * i / len(gateways))) for i, gw in enumerate(gateways)]
    producers = [asyncio.create_task(gw.produce(epoch, args.speedup, producing)) for gw in gateways]
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()
    threading.Thread(target=lambda: [loop.call_soon_threadsafe(commands.put_nowait, line.strip())
                                     for line in sys.stdin], daemon=True).start()
    undrained = list(gateways)
    marks = 0

    def status() -> dict[str, Any]:
        nonlocal undrained
        undrained = [gw for gw in undrained if not gw.backlog_drained()]
        return {"connected": sum(health.snapshot().values()), "marks": marks,
                "appended": sum(gw.last_seq for gw in gateways),
                "acked": sum(gw.uplink.batches_acked for gw in gateways), "backlog_gateways": len(undrained),
                "t": time.time()}

    loop_lag_s = 0.0  # the event loop's worst lateness since the last status line: a starved simulator shows here

    async def report() -> None:
        nonlocal loop_lag_s
        frozen_connected = False
        while True:
            line = status()
            if not frozen_connected and line["connected"] == len(gateways):
                gc.freeze()
                frozen_connected = True
            print(json.dumps({**line, "loop_lag_s": round(loop_lag_s, 3)}), flush=True)
            loop_lag_s = 0.0
            before = time.monotonic()
            await asyncio.sleep(0.5)
            loop_lag_s = max(loop_lag_s, time.monotonic() - before - 0.5)

    reporter = asyncio.create_task(report())
    while (command := await commands.get()) != "stop":
        if command == "mark":
            for gw in gateways:
                gw.backlog_mark = gw.last_seq
            undrained = list(gateways)
            marks += 1
    producing.clear()
    for task in producers:
        task.cancel()
    for _ in range(int(args.drain_timeout / 0.2)):  # until every outbox is empty, or the timeout
        if all(gw.uplink.batches_acked >= gw.last_seq for gw in gateways):
            break
        await asyncio.sleep(0.2)
    reporter.cancel()
    final = status()
    stop.set()
    await asyncio.wait(uplinks, timeout=30)
    final["produced"] = {gw.gateway_id: [gw.powers, gw.slots] for gw in gateways}
    final["held"] = {gw.gateway_id: gw.held() for gw in gateways if gw.uplink.batches_acked < gw.last_seq}
    final["unacked"] = sum(gw.last_seq - gw.uplink.batches_acked for gw in gateways)
    final["probes"] = [[gw.gateway_id, gw.measured_at[seq], sent] for gw in gateways
                       for seq, sent in gw.first_published.items() if seq in gw.measured_at]
    for gw in gateways:
        gw.outbox.close()
    print("FINAL " + json.dumps(final), flush=True)


# =================================================================================================
# The orchestration
# =================================================================================================


@dataclass
class Broker:
    """Mosquitto with the production config and one login per gateway, restartable on its port."""

    workdir: Path
    gateways: int
    secret: str
    ingest_password: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        passwords = self.workdir / "passwords"
        lines = [f"ingest:{self.ingest_password}"]
        lines += [f"{gateway_id(g)}:{gateway_password(self.secret, gateway_id(g))}" for g in range(self.gateways)]
        passwords.write_text("\n".join(lines) + "\n")
        passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        subprocess.run([passwd, "-U", str(passwords)], check=True, capture_output=True)  # hashes every line
        passwords.chmod(0o644)
        acl = self.workdir / "acl"
        shutil.copy(REPO / "deploy" / "mosquitto" / "acl", acl)
        acl.chmod(0o644)
        data = self.workdir / "mosquitto-data"
        data.mkdir()
        data.chmod(0o777)  # mosquitto drops root before it writes its persistence file
        self.port = listener_port()
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(production_broker_config(self.port, password_file=passwords, acl_file=acl, data_dir=data))
        conf.chmod(0o644)

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        log = self.workdir / "mosquitto.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen([binary, "-c", str(self.workdir / "mosquitto.conf")], stdout=out,
                                         stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc, log, "mosquitto")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s=60)

    def pids(self) -> list[int]:
        return [] if self.proc is None else [self.proc.pid]

    def gateway_ports(self) -> list[int]:
        return [self.port]

    def ingest_env(self, replica: int, replicas: int) -> dict[str, str]:
        """Ingest replica `replica`'s settings: over MQTT, sharing the readings when there are more."""
        env = {"PMS_MQTT_URL": f"mqtt://ingest:{self.ingest_password}@127.0.0.1:{self.port}",
               "PMS_MQTT_CLIENT_ID": f"fleet-bench-ingest-{replica}"}
        if replicas > 1:
            env["PMS_SHARE_GROUP"] = "fleet-bench-ingest"
        return env


class NatsBroker(Broker):
    """The 3-node NATS cluster of bench/nats_cluster.py (deploy/nats/node.conf), each node serving MQTT
    3.1.1, with one user per gateway; the gateways are dealt over the nodes in turn. Ingest runs as in
    production (docs/scale.md): the JetStream source, PMS_NATS_URL naming all three nodes, every
    replica pulling from the stream PMS_READINGS through the one durable consumer. A restart stops and
    starts every node (JetStream keeps sessions and the stream on disk)."""

    cluster: Any = None
    started: bool = False
    # An experiment, not the production file: the mqtt block's stream_replicas replaced (--nats-stream-replicas).
    stream_replicas: int | None = None

    def prepare(self) -> None:
        from nats_cluster import NODE_CONF, NatsCluster

        users = [f'    {{user: "ingest", password: "{self.ingest_password}"}}']
        users += [f'    {{user: "{gateway_id(g)}", password: "{gateway_password(self.secret, gateway_id(g))}"}}'
                  for g in range(self.gateways)]
        node_conf = NODE_CONF.read_text()  # an include is read relative to the including file: copied
        if self.stream_replicas is not None:
            if "stream_replicas: 3" not in node_conf:
                raise BenchError(f"{NODE_CONF} has no 'stream_replicas: 3' to replace")
            node_conf = node_conf.replace("stream_replicas: 3", f"stream_replicas: {self.stream_replicas}")
        (self.workdir / "node.conf").write_text(node_conf)
        conf = self.workdir / "fleet-node.conf"
        conf.write_text('include "node.conf"\n\nauthorization {\n  users = [\n' + "\n".join(users) + "\n  ]\n}\n")
        workdir = self.workdir

        class AuthCluster(NatsCluster):  # type: ignore[misc, valid-type]
            def _spawn(self, node: Any) -> None:
                from nats_cluster import nats_server_binary

                with node.log.open("ab") as out:
                    node.proc = subprocess.Popen([nats_server_binary(), "-c", str(conf)], cwd=workdir,
                                                 env=self._environment(node), stdout=out, stderr=subprocess.STDOUT)

        self.cluster = AuthCluster(self.workdir / "nats", 3)

    def start(self) -> None:
        # A restart counts as up once every node serves (MQTT listening, JetStream on, a meta leader),
        # as Mosquitto counts once it listens: gateways dial then, not when NATS's own /healthz says
        # every stream has caught up. Debian's nats-server 2.9.10 can leave a stream "not current"
        # long after a full restart while the cluster serves; unreplicated(), after the drain, reports it.
        self.cluster.start(timeout_s=120, serving_only=self.started)
        self.started = True

    def unreplicated(self) -> dict[str, str]:
        """Each node whose /healthz in full is not ok, with NATS's reason."""
        return {node.name: reason for node in self.cluster.nodes if (reason := node.unhealthy()) is not None}

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()

    def pids(self) -> list[int]:
        return [] if self.cluster is None else list(self.cluster.pids())

    def gateway_ports(self) -> list[int]:
        return [node.mqtt_port for node in self.cluster.nodes]

    def ingest_env(self, replica: int, replicas: int) -> dict[str, str]:
        servers = ",".join(f"nats://ingest:{self.ingest_password}@127.0.0.1:{node.client_port}"
                           for node in self.cluster.nodes)
        # Replica i dials node i first (nats-py tries the list in order unless told to shuffle).
        rotated = servers.split(",")[replica % 3:] + servers.split(",")[:replica % 3]
        return {"PMS_INGEST_SOURCE": "jetstream", "PMS_NATS_URL": ",".join(rotated),
                "PMS_MQTT_CLIENT_ID": f"fleet-bench-ingest-{replica}"}


class SimProcess:
    """A simulator process, its latest status line and its final report."""

    def __init__(self, first: int, count: int, args: argparse.Namespace, broker: Broker, workdir: Path,
                 env: dict[str, str]) -> None:
        argv = [sys.executable, str(Path(__file__).resolve()), "--role", "sim", "--first", str(first),
                "--count", str(count), "--broker-ports", ",".join(map(str, broker.gateway_ports())),
                "--speedup", str(args.speedup), "--heartbeat-interval", str(args.heartbeat_interval),
                "--gateway-timeout", str(args.gateway_timeout), "--ramp", str(args.ramp),
                "--outbox-dir", str(workdir / "outboxes"), "--drain-timeout", str(args.drain_timeout)]
        self.count = count
        self.log = (workdir / f"sim-{first}.log").open("ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, env=env, cwd=REPO)
        self.status: dict[str, Any] = {"connected": 0, "appended": 0, "acked": 0, "backlog_gateways": count}
        self.final: dict[str, Any] | None = None
        self.built_at: float | None = None  # monotonic time of its first status line: every gateway built
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("FINAL "):
                self.final = json.loads(line[6:])
            elif line.startswith("{"):
                self.status = json.loads(line)
                if self.built_at is None:
                    self.built_at = time.monotonic()

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()


def start_ingest(workdir: Path, tsdb_url: str, broker_env: dict[str, str], replica: int = 0) -> tuple[
        subprocess.Popen[bytes], int]:
    port = listener_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PMS_")},
           "PMS_TSDB_URL": tsdb_url, "PMS_METRICS_PORT": str(port), "PMS_LOG_LEVEL": "WARNING", **broker_env}
    log = workdir / f"ingest-{replica}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pms.cli", "ingest"], env=env, cwd=workdir, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if '"ok"' in http_text(f"http://127.0.0.1:{port}/healthz"):
                return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop_process(proc)
    raise BenchError(f"ingest did not become healthy:\n{log.read_text(errors='replace')[-3000:]}")


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def readings_stored(metrics_ports: list[int]) -> float:
    """Readings stored by every ingest replica (their counters summed)."""
    total = 0.0
    for port in metrics_ports:
        text = http_text(f"http://127.0.0.1:{port}/metrics")
        total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("pms_ingest_readings_total{"))
    return total


class Influx:
    """InfluxQL on the store's v1 /query API (what Grafana and the API read too)."""

    def __init__(self, address: str) -> None:
        self.base = f"http://{address}/query"

    def series(self, q: str) -> list[dict[str, Any]]:
        url = self.base + "?" + urllib.parse.urlencode({"db": DATABASE, "q": q, "epoch": "s"})
        with urllib.request.urlopen(url, timeout=120) as response:
            answer = json.loads(response.read())
        out: list[dict[str, Any]] = []
        for result in answer.get("results", []):
            if "error" in result:
                raise BenchError(f"InfluxDB refused {q!r}: {result['error']}")
            out.extend(result.get("series", []))
        return out

    def counts(self, measurement: str, field_name: str) -> dict[str, int]:
        """Points per gateway."""
        return {s["tags"]["gateway_id"]: int(s["values"][0][1])
                for s in self.series(f"SELECT count({field_name}) FROM {measurement} GROUP BY gateway_id")}


class QueryablePoller(threading.Thread):
    """Polls the newest stored power reading of the probe gateways; keeps when each newest time was
    first seen (the poll's answer time)."""

    def __init__(self, influx: Influx, probes: list[str], interval_s: float) -> None:
        super().__init__(daemon=True)
        self.influx = influx
        self.pattern = "|".join(probes)
        self.interval_s = interval_s
        self.seen: dict[str, list[tuple[float, float]]] = {gid: [] for gid in probes}  # (wall, newest epoch s)
        self.halt = threading.Event()
        self.query_s: list[float] = []

    def run(self) -> None:
        q = f"SELECT last(power_w) FROM power WHERE gateway_id =~ /^({self.pattern})$/ GROUP BY gateway_id"
        while not self.halt.is_set():
            asked = time.time()
            try:
                series = self.influx.series(q)
            except (OSError, BenchError):  # not created yet, or busy: the next poll tells
                series = []
            answered = time.time()
            self.query_s.append(answered - asked)
            for s in series:
                gid, newest = s["tags"]["gateway_id"], float(s["values"][0][0])
                seen = self.seen[gid]
                if not seen or newest > seen[-1][1]:
                    seen.append((answered, newest))
            self.halt.wait(max(0.0, self.interval_s - (time.time() - asked)))

    def latencies(self, probes: list[list[Any]], window: tuple[float, float]) -> list[float]:
        """Publish -> queryable of the probe readings first published within `window`."""
        out = []
        for gid, measured_at, published in probes:
            if not window[0] <= published <= window[1]:
                continue
            for wall, newest in self.seen.get(gid, []):
                if newest >= measured_at and wall >= published:
                    out.append(wall - published)
                    break
        return sorted(out)


@dataclass
class ProcessFigures:
    name: str
    pids: Callable[[], list[int]]
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    rss_peak_mb: float = 0.0
    samples: list[float] = field(default_factory=list)

    def family(self) -> list[int]:
        return [p for pid in self.pids() for p in process_family(pid)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    return values[min(len(values) - 1, int(len(values) * q))]


def wait_for(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.2,
             progress: Callable[[], None] | None = None) -> float | None:
    """Seconds until `condition` held, or None at the timeout; `progress` is called every 10 s."""
    started = last_progress = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        if progress is not None and time.monotonic() - last_progress >= 10:
            progress()
            last_progress = time.monotonic()
        time.sleep(every_s)
    return None


def run_fleet(args: argparse.Namespace, workdir: Path, out: Callable[[str], None]) -> dict[str, Any]:
    open_files = raise_open_files_limit()
    secret = secrets.token_hex(16)
    env = {**os.environ, "PMS_FLEET_SECRET": secret}
    result: dict[str, Any] = {"broker": args.broker, "gateways": args.gateways, "speedup": args.speedup,
                              "ingest_replicas": args.ingest_replicas,
                              "ingest_source": "jetstream" if args.broker == "nats" else "mqtt",
                              "gateway_timeout_s": args.gateway_timeout, "ramp_s": args.ramp,
                              "open_files_limit": open_files, "cpus": os.cpu_count(),
                              "load_average_start": os.getloadavg()}
    influxd, address = start_influxd(workdir)
    broker = (NatsBroker if args.broker == "nats" else Broker)(workdir, args.gateways, secret, secrets.token_hex(12))
    if isinstance(broker, NatsBroker):
        broker.stream_replicas = args.nats_stream_replicas
        result["nats_stream_replicas"] = args.nats_stream_replicas
    sims: list[SimProcess] = []
    ingests: list[subprocess.Popen[bytes]] = []
    metrics_ports: list[int] = []
    poller: QueryablePoller | None = None
    try:
        broker.prepare()
        broker.start()
        for replica in range(args.ingest_replicas):
            ingest, metrics_port = start_ingest(workdir, f"influxdb://{address}/{DATABASE}",
                                                broker.ingest_env(replica, args.ingest_replicas), replica)
            ingests.append(ingest)
            metrics_ports.append(metrics_port)
        influx = Influx(address)
        procs = [ProcessFigures("broker", broker.pids), ProcessFigures("ingest", lambda: [i.pid for i in ingests]),
                 ProcessFigures("influxd", lambda: [influxd.pid]),
                 ProcessFigures("simulators", lambda: [s.proc.pid for s in sims])]

        def connected() -> int:
            return sum(int(s.status["connected"]) for s in sims)

        def sample_rss() -> None:
            for p in procs:
                p.rss_peak_mb = max(p.rss_peak_mb, rss_mb(p.family()))

        # ---- connect ----
        started = time.monotonic()
        per = args.gateways_per_process
        for first in range(0, args.gateways, per):
            sims.append(SimProcess(first, min(per, args.gateways - first), args, broker, workdir, env))
        probes = [gateway_id(g) for g in range(0, args.gateways, PROBE_EVERY)]
        poller = QueryablePoller(influx, probes, args.poll_interval)
        poller.start()
        connect_s = wait_for(lambda: connected() >= args.gateways, args.connect_timeout,
                             progress=lambda: out(f"  {connected():,} connected"))
        result["connected"] = connected()
        built = max((s.built_at or time.monotonic()) for s in sims)
        result["build_s"] = round(built - started, 1)
        result["connect_s"] = round(time.monotonic() - built, 1) if connect_s is not None else None
        out(f"connected gateways: {result['connected']:,} of {args.gateways:,}, all within "
            f"{time.monotonic() - built:.1f} s of the last simulator having built its gateways (outboxes opened: "
            f"{result['build_s']} s; {len(sims)} simulator processes, "
            f"{'every gateway dialling at once' if not args.ramp else f'first dials spread over {args.ramp:g} s'})")

        # ---- steady ----
        time.sleep(args.warmup)
        window_start = time.time()
        stored_start = readings_stored(metrics_ports)
        for p in procs:
            p.cpu_start = cpu_seconds(p.family())
        least_connected = connected()
        worst_lag_s = 0.0
        while time.time() - window_start < args.duration:
            sample_rss()
            least_connected = min(least_connected, connected())
            worst_lag_s = max([worst_lag_s, *(float(s.status.get("loop_lag_s", 0.0)) for s in sims)])
            time.sleep(0.5)
        window_end = time.time()
        elapsed = window_end - window_start
        stored = readings_stored(metrics_ports) - stored_start
        for p in procs:
            p.cpu_end = cpu_seconds(p.family())
        offered = args.gateways * args.speedup * (1 / POWER_INTERVAL_S + 1 / SLOT_S)
        result["readings_per_s"] = round(stored / elapsed, 1)
        result["offered_readings_per_s"] = round(offered, 1)
        result["least_connected_in_window"] = least_connected
        result["simulator_loop_lag_s_max"] = round(worst_lag_s, 2)
        result["load_average_steady"] = os.getloadavg()
        result["processes"] = {
            p.name: {"cpu_percent_of_core": round((p.cpu_end - p.cpu_start) / elapsed * 100, 1),
                     "rss_mb": round(p.rss_peak_mb, 1), "count": len(p.family())} for p in procs}
        out(f"readings stored: {result['readings_per_s']:,.0f}/s over {elapsed:.0f} s "
            f"(offered {offered:,.0f}/s: power every {POWER_INTERVAL_S / args.speedup:.1f} s and a slot every "
            f"{SLOT_S / args.speedup:.0f} s per gateway at speedup {args.speedup:g}); least connected "
            f"{least_connected:,}; simulators' event loops late by {worst_lag_s:.2f} s at worst")
        for name, figures in result["processes"].items():
            out(f"  {name:11} CPU {figures['cpu_percent_of_core']:6.1f} % of a core, RSS {figures['rss_mb']:8.1f} MB"
                f" ({figures['count']} processes)  per 1,000 gateways: "
                f"{figures['cpu_percent_of_core'] * 1000 / args.gateways:.1f} % CPU, "
                f"{figures['rss_mb'] * 1000 / args.gateways:.1f} MB")

        # ---- broker restart ----
        broker.stop()
        down_at = time.monotonic()
        time.sleep(args.outage)
        broker.start()
        up_at = time.monotonic()
        for s in sims:
            s.send("mark")
        # Only status lines written after the mark count (a simulator busy with the storm writes late).
        wait_for(lambda: all(int(s.status.get("marks", 0)) >= 1 for s in sims), args.drain_timeout)
        marked_s = time.monotonic() - up_at
        def progress() -> None:
            out(f"  {time.monotonic() - up_at:5.0f} s after the restart: {connected():,} connected, "
                f"{sum(int(s.status['backlog_gateways']) for s in sims):,} gateways still holding a batch "
                f"from before it")

        reconnect_s = wait_for(lambda: connected() >= args.gateways, args.drain_timeout, progress=progress)
        drain_s = wait_for(lambda: all(s.status["backlog_gateways"] == 0 for s in sims),
                           max(1.0, args.drain_timeout - (time.monotonic() - up_at)), progress=progress)
        result["outage_s"] = round(up_at - down_at, 1)
        result["reconnect_s"] = None if reconnect_s is None else round(reconnect_s + marked_s, 1)
        result["drain_s"] = None if drain_s is None else round(time.monotonic() - up_at, 1)
        result["connected_after_restart"] = connected()
        out(f"broker restart after {result['outage_s']} s down: all {args.gateways:,} reconnected "
            f"in {result['reconnect_s']} s, every batch held at the restart acked in {result['drain_s']} s "
            f"(backoff with jitter, 1 s doubling to 120 s)")
        if isinstance(broker, NatsBroker):
            # Not a pass/fail figure: the count of readings below is. It tells whether NATS itself
            # had its streams replicated again by now.
            wait_for(lambda: not broker.unreplicated(), 60, every_s=1.0)
            behind = broker.unreplicated()
            result["nats_current_s"] = None if behind else round(time.monotonic() - up_at, 1)
            result["nats_not_current"] = behind
            out(f"NATS /healthz after the restart: {f'not current: {behind}' if behind else 'every node current'} "
                f"{time.monotonic() - up_at:.0f} s after it served again")

        # ---- end: empty every outbox, then count every reading ----
        for s in sims:
            s.send("stop")
        # The report is what counts; a simulator whose gateways are still mid-reconnect may take a
        # while to wind down after it (aiomqtt's disconnects), and is ended.
        wait_for(lambda: all(s.final is not None for s in sims), args.drain_timeout + 120)
        for s in sims:
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.proc.wait(timeout=30)
            if s.proc.poll() is None:
                s.proc.kill()
        poller.halt.set()
        poller.join(timeout=10)
        finals = [s.final for s in sims]
        if any(f is None for f in finals):
            raise BenchError(f"a simulator ended without its report (see {workdir}/sim-*.log)")
        produced: dict[str, list[int]] = {}
        held: dict[str, list[int]] = {}
        probe_records: list[list[Any]] = []
        unacked = 0
        for f in finals:
            assert f is not None
            produced.update(f["produced"])
            held.update(f.get("held", {}))
            probe_records.extend(f["probes"])
            unacked += int(f["unacked"])
        powers = influx.counts("power", "power_w")
        slots = influx.counts("energy_slot", "reverse_kwh")
        # Lost: neither stored nor still in its gateway's outbox (held readings are resent later).
        lost_powers = sum(max(0, n - powers.get(gid, 0) - held.get(gid, [0, 0])[0]) for gid, (n, _) in produced.items())
        lost_slots = sum(max(0, n - slots.get(gid, 0) - held.get(gid, [0, 0])[1]) for gid, (_, n) in produced.items())
        latencies = poller.latencies(probe_records, (window_start, window_end))
        result.update({
            "produced_powers": sum(n for n, _ in produced.values()),
            "produced_slots": sum(n for _, n in produced.values()),
            "stored_powers": sum(powers.values()), "stored_slots": sum(slots.values()),
            "lost_powers": lost_powers, "lost_slots": lost_slots, "lost": lost_powers + lost_slots,
            "unacked_at_end": unacked,
            "held_powers_at_end": sum(h[0] for h in held.values()),
            "held_slots_at_end": sum(h[1] for h in held.values()),
            "publish_to_queryable_ms": {"p50": round(percentile(latencies, 0.5) * 1000),
                                        "p99": round(percentile(latencies, 0.99) * 1000),
                                        "max": round(percentile(latencies, 1.0) * 1000),
                                        "samples": len(latencies)} if latencies else None,
            "poll_query_ms_p50": round(percentile(sorted(poller.query_s), 0.5) * 1000, 1),
            "elapsed_s": round(time.monotonic() - started, 1),
        })
        lat = result["publish_to_queryable_ms"] or {"p50": "n/a", "p99": "n/a", "samples": 0}
        out(f"publish → queryable (probes, steady window): p50 {lat['p50']} ms, p99 {lat['p99']} ms "
            f"({lat['samples']} readings of {len(probes)} probe gateways, polled every {args.poll_interval:g} s)")
        out(f"lost = {result['lost']} (power readings {result['stored_powers']:,} stored of "
            f"{result['produced_powers']:,}, slots {result['stored_slots']:,} of {result['produced_slots']:,}; "
            f"unacked batches at the end {unacked}, still in outboxes: {result['held_powers_at_end']:,} power "
            f"readings, {result['held_slots_at_end']:,} slots)")
        return result
    finally:
        if poller is not None:
            poller.halt.set()
        for s in sims:
            if s.proc.poll() is None:
                s.proc.send_signal(signal.SIGTERM)
        for s in sims:
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.proc.wait(timeout=30)
            if s.proc.poll() is None:
                s.proc.kill()
        for ingest in ingests:
            stop_process(ingest)
        broker.stop()
        stop_process(influxd)


@contextmanager
def bench_workdir(keep: bool) -> Iterator[Path]:
    """A work dir on tmpfs when there is one (the outboxes: thousands of gateways' disks in one)."""
    base = "/dev/shm" if Path("/dev/shm").is_dir() else None
    tmp = tempfile.mkdtemp(prefix="pms-fleet-", dir=base)
    path = Path(tmp)
    path.chmod(0o755)  # the broker reads its files after dropping root
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--broker", choices=["mosquitto", "nats"], default="mosquitto",
                        help="mosquitto (one, production config) or nats (bench/nats_cluster.py's 3 nodes)")
    parser.add_argument("--speedup", type=float, default=10.0,
                        help="simulated time runs this many times faster (60 s power every 60/speedup s)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady running measured")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds after all connect before measuring")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the broker stays down")
    parser.add_argument("--ingest-replicas", type=int, default=1,
                        help="ingest processes: over NATS all pull from the one durable consumer; over "
                        "Mosquitto they share the readings subscription ($share)")
    parser.add_argument("--nats-stream-replicas", type=int, choices=[1, 2, 3],
                        help="an experiment: run the nodes with this mqtt stream_replicas instead of "
                        "deploy/nats/node.conf's (sessions, retained and QoS 1 messages)")
    parser.add_argument("--gateways-per-process", type=int, default=2500)
    parser.add_argument("--heartbeat-interval", type=float, default=30.0, help="the collector's default")
    parser.add_argument("--gateway-timeout", type=float, default=10.0,
                        help="seconds a gateway waits for a PUBACK/SUBACK before it drops the connection "
                        "(aiomqtt's default 10, as the collector); thousands of gateways share one simulator's "
                        "event loop, which a busy machine makes late where a real gateway has its own CPU")
    parser.add_argument("--ramp", type=float, default=0.0,
                        help="spread the first connections over this many seconds (0: every gateway at once)")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between store polls")
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object at the end")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs) for a look afterwards")
    parser.add_argument("--role", choices=["sim"], help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--broker-ports", help=argparse.SUPPRESS)
    parser.add_argument("--outbox-dir", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role == "sim":
        raise_open_files_limit()
        Path(args.outbox_dir).mkdir(parents=True, exist_ok=True)
        asyncio.run(simulate(args))
        return 0
    end_cleanly_on_sigterm()
    print(f"fleet bench: {args.gateways:,} gateways on {args.broker}, speedup {args.speedup:g}, "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    with bench_workdir(args.keep) as workdir:
        print(f"work dir: {workdir} ({'kept' if args.keep else 'removed at the end, also on SIGTERM'})", flush=True)
        try:
            result = run_fleet(args, workdir, lambda line: print(line, flush=True))
        except BenchError as exc:
            # Its first line says what failed; logs follow it. Repeated last, where a reader of the
            # output's tail (a test's failure message) looks.
            print(f"fleet bench: {exc}\nfleet bench failed: {str(exc).splitlines()[0]}", file=sys.stderr,
                  flush=True)
            return 2
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0 if result["lost"] == 0 and result["connected"] == args.gateways else 1


if __name__ == "__main__":
    raise SystemExit(main())
