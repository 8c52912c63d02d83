"""Two ingest replicas on one Mosquitto `$share` subscription (round robin): resends, loss, double counting.

    .venv/bin/python bench/share_acks.py [--gateways 8] [--batches 60] [--interval 0.05]
                                         [--resend-timeout 2] [--max-in-flight 50]

Starts its own Mosquitto on a free port (deploy/mosquitto/test-broker.conf: the production queue and
in-flight limits, no auth, no persistence) and two `pms ingest` processes sharing
`$share/<group>/pms/v1/gw/+/readings` over one SQLite store. Mosquitto deals a gateway's batches out
to the two in turn, so each replica stores only every other batch of a gateway.

The gateways are simulated in this process with the collector's own outbox and uplink (the real
pump, acks and resends, over real MQTT connections), each storing `--batches` batches (a power
reading and a slot's registers each) at `--interval`. Then the same again with gateways that behave
as collectors did before selective acks: they ignore `Ack.stored_ranges` and delete only up to the
cumulative point. For each run it prints, per gateway, the batches published again after no ack
(resends), and overall the readings lost (stored nowhere), doubled (a power sample or slot stored
twice, or slot energy summed to more than the registers say) and the time until every outbox was
empty.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import aiomqtt
from _support import REPO, end_cleanly_on_sigterm, start_mosquitto, stop_process, wait_healthy

from pms_collector.outbox import Outbox
from pms_collector.readings_json import encode_readings
from pms_collector.uplink import IncomingMessage, MqttClient, Uplink
from pms_common import topics
from pms_common.health import Health
from pms_common.messages import (
    Ack,
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
from pms_store.sqlite import SqliteStore

T0 = datetime(2026, 1, 5, tzinfo=JST)
SLOT_KWH = 0.5  # every slot sells this much: the registers grow by it per batch


@dataclass
class Figures:
    selective: bool
    resends: dict[str, int]
    lost: int
    doubled: int
    drained_s: float | None  # None: some outbox still held batches at the deadline
    stored_by_replica: list[float] = field(default_factory=list)

    def line(self) -> str:
        drained = f"{self.drained_s:.1f} s" if self.drained_s is not None else "NOT drained"
        per_gateway = " ".join(f"{n}" for n in self.resends.values())
        return (f"{'selective acks' if self.selective else 'cumulative only (old collector)':32} "
                f"resends per gateway: [{per_gateway}] (total {sum(self.resends.values())}), "
                f"lost {self.lost}, doubled {self.doubled}, all outboxes empty after {drained}, "
                f"batches stored per replica {[int(n) for n in self.stored_by_replica]}")


class CountingClient:
    """An aiomqtt client that counts what the uplink publishes per topic (for resends per gateway)."""

    def __init__(self, client: aiomqtt.Client, counts: Counter[int], gateway_id: str) -> None:
        self._client = client
        self._counts = counts
        self._readings = topics.readings(gateway_id)
        self.pending_calls_threshold = client.pending_calls_threshold

    @property
    def messages(self) -> AsyncIterator[IncomingMessage]:
        return self._client.messages  # type: ignore[return-value]

    async def subscribe(self, topic: list[tuple[str, int]], /) -> object:
        return await self._client.subscribe(topic)

    async def publish(self, topic: str, /, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        if topic == self._readings:
            self._counts[int(payload.split(b'"seq":', 1)[1].split(b",", 1)[0])] += 1
        self._client.pending_calls_threshold = self.pending_calls_threshold
        await self._client.publish(topic, payload, qos=qos, retain=retain)


class CumulativeOnlyUplink(Uplink):
    """The uplink as it was before selective acks: `stored_ranges` goes unread."""

    def _on_ack(self, ack: Ack) -> None:
        super()._on_ack(ack.model_copy(update={"stored_ranges": []}))


class StillConfig:
    def __init__(self) -> None:
        self.reported = ConfigReported(version=0, power_interval_s=60, heartbeat_interval_s=30, applied_at=now_jst())

    def apply_config(self, desired: ConfigDesired) -> ConfigReported | None:
        return None

    def reported_config(self) -> ConfigReported:
        return self.reported


class Gateway:
    def __init__(self, gateway_id: str, workdir: Path, broker: BrokerAddress, *, selective: bool,
                 resend_timeout_s: float, max_in_flight: int) -> None:
        self.gateway_id = gateway_id
        self.outbox = Outbox(workdir / f"outbox-{gateway_id}.db", max_batches=100_000)
        self.published: Counter[int] = Counter()
        self.batch_stored = asyncio.Event()
        self.broker = broker
        uplink = Uplink if selective else CumulativeOnlyUplink
        self.uplink = uplink(
            self.outbox, heartbeat=self._beat, commands=self._command, config=StillConfig(),
            batch_stored=self.batch_stored, health=Health(), gateway_id=gateway_id, broker=broker,
            client_id=f"bench-{gateway_id}", max_in_flight=max_in_flight, resend_timeout_s=resend_timeout_s,
            connect=self._connect)

    @asynccontextmanager
    async def _connect(self, will: aiomqtt.Will) -> AsyncIterator[MqttClient]:
        async with self.broker.client(identifier=f"bench-{self.gateway_id}", will=will, clean_session=True) as client:
            yield CountingClient(client, self.published, self.gateway_id)

    def _beat(self) -> Heartbeat:
        return Heartbeat(gateway_id=self.gateway_id, at=now_jst(), uptime_s=0, firmware="bench",
                         module_family="sim", read_errors_total=0, outbox_depth=self.outbox.depth(),
                         power_interval_s=60, heartbeat_interval_s=30)

    async def _command(self, request: CommandRequest) -> CommandResult:
        return CommandResult(correlation_id=request.correlation_id, ok=False, error="bench", at=now_jst())

    async def produce(self, batches: int, interval_s: float) -> None:
        for i in range(batches):
            readings: list[PowerReading | EnergyReading] = [
                PowerReading(measured_at=T0 + timedelta(seconds=i), power_w=-1000 - i),
                EnergyReading(slot_end=T0 + i * timedelta(minutes=30), forward_kwh=100.0,
                              reverse_kwh=1000.0 + i * SLOT_KWH)]
            self.outbox.append(encode_readings(readings), has_energy=True, now=time.time())
            self.batch_stored.set()
            await asyncio.sleep(interval_s)

    def resends(self) -> int:
        return sum(self.published.values()) - len(self.published)


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def start_ingest(name: str, workdir: Path, broker_url: str, group: str) -> tuple[subprocess.Popen[bytes], int]:
    port = listener_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PMS_")},
           "PMS_MQTT_URL": broker_url, "PMS_TSDB_URL": f"sqlite:///{workdir}/pms-ts.db",
           "PMS_REGISTRY_URL": f"sqlite:///{workdir}/pms.db", "PMS_SHARE_GROUP": group,
           "PMS_MQTT_CLIENT_ID": f"{group}-{name}", "PMS_METRICS_PORT": str(port), "PMS_LOG_LEVEL": "WARNING"}
    log = (workdir / f"ingest-{name}.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "pms.cli", "ingest"], env=env, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT)
    wait_healthy(proc, port, workdir / f"ingest-{name}.log", f"ingest {name}")
    return proc, port


def count_store(path: Path, gateways: list[Gateway], batches: int) -> tuple[int, int]:
    """(lost, doubled) from what the store holds against what the gateways produced."""
    lost = doubled = 0
    with sqlite3.connect(path) as db:
        for gateway in gateways:
            rows, distinct = db.execute("SELECT count(*), count(DISTINCT measured_at) FROM power WHERE gateway_id = ?",
                                        (gateway.gateway_id,)).fetchone()
            slots, distinct_slots = db.execute(
                "SELECT count(*), count(DISTINCT slot_end) FROM energy_slot WHERE gateway_id = ?",
                (gateway.gateway_id,)).fetchone()
            lost += (batches - distinct) + (batches - distinct_slots)
            doubled += (rows - distinct) + (slots - distinct_slots)
    # Slot energy summed by the store's own rollups: more than the registers grew is double counting.
    store = SqliteStore(path)
    try:
        end = T0 + batches * timedelta(minutes=30) + timedelta(days=1)
        sold = sum(point.sold_kwh or 0.0 for point in store.energy_series(
            [g.gateway_id for g in gateways], T0 - timedelta(days=1), end, "day"))
    finally:
        store.close()
    expected = len(gateways) * (batches - 1) * SLOT_KWH
    if sold > expected + 1e-6:
        doubled += round((sold - expected) / SLOT_KWH)
    elif sold < expected - 1e-6:
        lost += round((expected - sold) / SLOT_KWH)
    return lost, doubled


async def run_gateways(gateways: list[Gateway], batches: int, interval_s: float, deadline_s: float) -> float | None:
    stop = asyncio.Event()
    uplinks = [asyncio.create_task(g.uplink.run(stop)) for g in gateways]
    started = time.monotonic()
    try:
        await asyncio.gather(*(g.produce(batches, interval_s) for g in gateways))
        while time.monotonic() - started < deadline_s:
            if all(g.outbox.depth() == 0 for g in gateways):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        return None
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*uplinks, return_exceptions=True), 20)


def run(*, selective: bool, gateways: int = 8, batches: int = 60, interval_s: float = 0.05,
        resend_timeout_s: float = 2.0, max_in_flight: int = 50, deadline_s: float = 120.0,
        workdir: Path | None = None) -> Figures:
    """One run on a fresh broker, store and pair of ingest replicas."""
    with tempfile.TemporaryDirectory(prefix="pms-share-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        broker, port = start_mosquitto(work)
        replicas: list[tuple[subprocess.Popen[bytes], int]] = []
        try:
            url = f"mqtt://127.0.0.1:{port}"
            replicas = [start_ingest(name, work, url, "bench") for name in ("a", "b")]
            sims = [Gateway(f"gw-{i:04d}", work, BrokerAddress.parse(url), selective=selective,
                            resend_timeout_s=resend_timeout_s, max_in_flight=max_in_flight)
                    for i in range(1, gateways + 1)]
            drained = asyncio.run(run_gateways(sims, batches, interval_s, deadline_s))
            stored = [metric(http_text(f"http://127.0.0.1:{p}/metrics"), "pms_ingest_batches_total")
                      for _, p in replicas]
            for sim in sims:
                sim.outbox.close()
            lost, doubled = count_store(work / "pms-ts.db", sims, batches)
            return Figures(selective=selective, resends={s.gateway_id: s.resends() for s in sims}, lost=lost,
                           doubled=doubled, drained_s=drained, stored_by_replica=stored)
        finally:
            for proc, _ in replicas:
                proc.terminate()
            for proc, _ in replicas:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            stop_process(broker, timeout_s=10)


def main(argv: list[str] | None = None) -> int:
    end_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=8)
    parser.add_argument("--batches", type=int, default=60, help="batches per gateway")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between a gateway's batches")
    parser.add_argument("--resend-timeout", type=float, default=2.0, help="the collector's resend_timeout_s")
    parser.add_argument("--max-in-flight", type=int, default=50, help="the collector's max_in_flight")
    args = parser.parse_args(argv)
    print(f"{args.gateways} gateways x {args.batches} batches every {args.interval} s, two ingest replicas on "
          f"Mosquitto $share (round robin), resend timeout {args.resend_timeout} s, "
          f"max in flight {args.max_in_flight}")
    for selective in (True, False):
        figures = run(selective=selective, gateways=args.gateways, batches=args.batches, interval_s=args.interval,
                      resend_timeout_s=args.resend_timeout, max_in_flight=args.max_in_flight)
        print(figures.line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
