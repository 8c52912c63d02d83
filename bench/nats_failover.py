"""The NATS scale path under failure: a 3-node cluster, gateways spread over its nodes, two ingest
replicas on the JetStream consumer; the node leading the readings stream and one ingest replica are
killed (SIGKILL) mid-run. Prints lost, doubled, drain time and CPU/RSS per process.

    .venv/bin/python bench/nats_failover.py [--gateways 300] [--batches 20] [--interval 0.5]
                                            [--node-stays-down] [--ack-wait 30]

The cluster is bench/nats_cluster.py (deploy/nats/node.conf on free loopback ports). Each gateway
runs the collector's own outbox and uplink in this process (the real pump, acks and resends over
a real MQTT connection to its home node; when that node is gone it dials the next one, as a
gateway behind a load balancer or with a list of brokers would). Each batch carries a power sample
and a 30-minute slot's registers. The two ingest replicas are `pms ingest` processes with
PMS_INGEST_SOURCE=jetstream over one SQLite store. Once `--kill-after` of all batches are acked (at
3/4 of the production time at the latest), the stream's leader node and replica "a" are killed; the
node comes back `--restart-after` seconds later unless `--node-stays-down`. Then every slot and
sample is counted in the store:
lost = produced but not stored, doubled = stored twice or summed to more energy than the registers
grew. Drain = from the last batch produced until every outbox is empty (every batch acked).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import nats
from _support import REPO, cpu_seconds, end_cleanly_on_sigterm, process_family, rss_mb, stop_process, wait_healthy
from nats_cluster import NatsCluster, nats_cluster
from share_acks import CountingClient, Gateway, count_store, metric

from pms_collector import metrics as collector_metrics
from pms_collector.uplink import MqttClient
from pms_common.mqtt import BrokerAddress
from pms_common.ports import listener_port
from pms_ingest.jetstream import STREAM


@dataclass
class Figures:
    gateways: int
    batches: int
    node_restarted: bool
    lost: int
    doubled: int
    drained_s: float | None  # None: some outbox still held batches at the deadline
    killed_node: str = ""
    resends: int = 0
    redelivered: float = 0.0  # JetStream messages replica b received again (a's unacked, or acks lost)
    refused_subscriptions: float = 0.0  # SUBACK 0x80 answers the gateways got (each a reconnect)
    stored_by_replica: dict[str, float] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    load: str = ""

    def lines(self) -> list[str]:
        drained = f"{self.drained_s:.1f} s" if self.drained_s is not None else "NOT drained"
        node = "restarted" if self.node_restarted else "left down"
        per_replica = {k: "killed" if v != v else int(v) for k, v in self.stored_by_replica.items()}  # NaN: killed
        out = [f"{self.gateways} gateways x {self.batches} batches, 3 NATS nodes, 2 ingest replicas; "
               f"killed {self.killed_node} (stream leader, {node}) and ingest a: lost {self.lost}, "
               f"doubled {self.doubled}, drain after the last batch {drained}, gateway resends {self.resends}, "
               f"JetStream redeliveries {int(self.redelivered)}, "
               f"subscriptions refused (SUBACK 0x80, reconnected) {int(self.refused_subscriptions)}, "
               f"batches stored per replica {per_replica}, "
               f"load {self.load}"]
        for name in self.cpu_s:
            out.append(f"  {name:18} CPU {self.cpu_s[name]:7.1f} s   RSS {self.rss_mb[name]:7.1f} MB")
        return out


class ClusterGateway(Gateway):
    """A simulated gateway with a home node; while its current node refuses it, it dials the next."""

    def __init__(self, gateway_id: str, workdir: Path, brokers: list[BrokerAddress], home: int,
                 resend_timeout_s: float, max_in_flight: int) -> None:
        super().__init__(gateway_id, workdir, brokers[home], selective=True, resend_timeout_s=resend_timeout_s,
                         max_in_flight=max_in_flight)
        self.brokers = brokers
        self.current = home

    @asynccontextmanager
    async def _connect(self, will: aiomqtt.Will) -> AsyncIterator[MqttClient]:
        broker = self.brokers[self.current]
        try:
            client = broker.client(identifier=f"bench-{self.gateway_id}", will=will, clean_session=True)
            await client.__aenter__()
        except aiomqtt.MqttError:
            self.current = (self.current + 1) % len(self.brokers)
            raise
        try:
            yield CountingClient(client, self.published, self.gateway_id)
        finally:
            await client.__aexit__(None, None, None)


def start_ingest(name: str, workdir: Path, nats_url: str, ack_wait_s: float,
                 fetch: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = listener_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PMS_")},
           "PMS_INGEST_SOURCE": "jetstream", "PMS_NATS_URL": nats_url,
           "PMS_JETSTREAM_ACK_WAIT_S": str(ack_wait_s), **({"PMS_JETSTREAM_FETCH": str(fetch)} if fetch else {}),
           "PMS_TSDB_URL": f"sqlite:///{workdir}/pms-ts.db", "PMS_REGISTRY_URL": f"sqlite:///{workdir}/pms.db",
           "PMS_MQTT_CLIENT_ID": f"pms-ingest-{name}", "PMS_METRICS_PORT": str(port), "PMS_LOG_LEVEL": "WARNING"}
    log = workdir / f"ingest-{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pms.cli", "ingest"], env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT)
    wait_healthy(proc, port, log, f"ingest {name}")
    return proc, port


def stored_batches(proc: subprocess.Popen[bytes], port: int, name: str = "pms_ingest_batches_total") -> float:
    """A replica's counter `name` (by default the batches it stored; NaN for a killed one)."""
    if proc.poll() is not None:
        return float("nan")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return metric(answer.read().decode(), name)


async def stream_leader(cluster: NatsCluster) -> int:
    """The index of the node leading PMS_READINGS (the worst one to lose)."""
    connection = await nats.connect(servers=cluster.nats_urls)
    try:
        # A loaded cluster can leave the JetStream API unanswered for a while (seen: 5 s timeouts
        # with 300 sessions opening); the run must not end on it.
        deadline = time.monotonic() + 60
        while True:
            try:
                info = await connection.jetstream(timeout=10).stream_info(STREAM)
                break
            except nats.errors.TimeoutError:
                if time.monotonic() > deadline:
                    raise
    finally:
        await connection.close()
    leader = info.cluster.leader if info.cluster else None
    return next((node.index for node in cluster.nodes if node.name == leader), 1)


@dataclass
class Processes:
    """The pids to measure, by name, captured while they run (a killed one keeps its last figures)."""

    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)

    def sample(self, name: str, pid: int) -> None:
        family = process_family(pid)
        cpu = cpu_seconds(family)
        if cpu or name not in self.cpu:
            self.cpu[name] = max(cpu, self.cpu.get(name, 0.0))
            self.rss[name] = max(rss_mb(family), self.rss.get(name, 0.0))


async def run_async(cluster: NatsCluster, work: Path, *, gateways: int, batches: int, interval_s: float,
                    kill_after: float, restart_after_s: float | None, ack_wait_s: float, resend_timeout_s: float,
                    deadline_s: float, fetch: int | None = None) -> Figures:
    loop = asyncio.get_running_loop()
    refused_before = collector_metrics.SUBSCRIPTIONS_REFUSED._value.get()

    def quiet(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        # A killed node leaves aiomqtt futures failed with no one waiting on them, and paho asking the
        # loop to watch sockets already closed: expected here, and not the figures.
        if not isinstance(context.get("exception"), (aiomqtt.MqttError, OSError)):
            loop.default_exception_handler(context)

    loop.set_exception_handler(quiet)
    replicas = {name: start_ingest(name, work, cluster.nats_url, ack_wait_s, fetch) for name in ("a", "b")}
    sims: list[ClusterGateway] = []
    measured = Processes()

    def sample() -> None:
        for node in cluster.nodes:
            if node.proc is not None and node.running:
                measured.sample(node.name, node.proc.pid)
        for name, (proc, _) in replicas.items():
            if proc.poll() is None:
                measured.sample(f"ingest-{name}", proc.pid)
        measured.sample("gateways (bench)", os.getpid())

    try:
        brokers = [BrokerAddress.parse(url) for url in cluster.mqtt_urls]
        sims = [ClusterGateway(f"gw-{i:04d}", work, brokers, i % len(brokers), resend_timeout_s, 50)
                for i in range(gateways)]
        stop = asyncio.Event()
        uplinks = [asyncio.create_task(g.uplink.run(stop)) for g in sims]
        producing = asyncio.gather(*(g.produce(batches, interval_s) for g in sims))
        # The kill comes once `kill_after` of all batches are acked (300 sessions take a while to
        # open on a loaded machine: a kill at a fixed time could find ingest with nothing to do yet).
        # It comes at 3/4 of the production time at the latest, so that it always falls mid-run.
        target = kill_after * gateways * batches
        latest = time.monotonic() + 0.75 * batches * interval_s
        while sum(g.uplink.batches_acked for g in sims) < target and time.monotonic() < latest:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # polling counters the uplinks keep: no event to wait on
        sample()
        killed = await stream_leader(cluster)
        before_kill = await asyncio.to_thread(stored_batches, *replicas["a"])
        cluster.kill(killed)
        replicas["a"][0].kill()
        killed_at = time.monotonic()
        restarted = False
        drained: float | None = None
        produced_at: float | None = None
        try:
            while True:
                now = time.monotonic()
                if produced_at is None and producing.done():
                    producing.result()
                    produced_at = now
                if restart_after_s is not None and not restarted and now - killed_at >= restart_after_s:
                    await asyncio.to_thread(cluster.restart, killed)
                    restarted = True
                if produced_at is not None and all(g.outbox.depth() == 0 for g in sims):
                    drained = now - produced_at
                    break
                if now - killed_at > deadline_s:
                    break
                if int(now) % 5 == 0:
                    sample()
                await asyncio.sleep(0.2)
            sample()
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*uplinks, return_exceptions=True), 30)
        stored = {name: await asyncio.to_thread(stored_batches, proc, port) for name, (proc, port) in replicas.items()}
        stored["a (until killed)"] = before_kill
        redelivered = await asyncio.to_thread(stored_batches, *replicas["b"], "pms_ingest_jetstream_redelivered_total")
        for replica, _ in replicas.values():
            stop_process(replica, timeout_s=15)
        for sim in sims:
            sim.outbox.close()
        lost, doubled = count_store(work / "pms-ts.db", list(sims), batches)
        return Figures(gateways=gateways, batches=batches, node_restarted=restarted, lost=lost, doubled=doubled,
                       drained_s=drained, killed_node=cluster.nodes[killed].name,
                       resends=sum(s.resends() for s in sims), stored_by_replica=stored, redelivered=redelivered,
                       refused_subscriptions=collector_metrics.SUBSCRIPTIONS_REFUSED._value.get() - refused_before,
                       cpu_s=measured.cpu, rss_mb=measured.rss, load=" ".join(f"{x:.1f}" for x in os.getloadavg()))
    finally:
        for replica, _ in replicas.values():
            stop_process(replica, timeout_s=15)


def run(*, gateways: int = 300, batches: int = 20, interval_s: float = 0.5, kill_after: float = 0.4,
        restart_after_s: float | None = 5.0, ack_wait_s: float = 30.0, resend_timeout_s: float = 10.0,
        deadline_s: float = 300.0, fetch: int | None = None, workdir: Path | None = None) -> Figures:
    """One run on a fresh cluster, store and pair of ingest replicas."""
    with tempfile.TemporaryDirectory(prefix="pms-nats-failover-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with nats_cluster(work / "nats") as cluster:
            return asyncio.run(run_async(cluster, work, gateways=gateways, batches=batches, interval_s=interval_s,
                                         kill_after=kill_after, restart_after_s=restart_after_s,
                                         ack_wait_s=ack_wait_s, resend_timeout_s=resend_timeout_s,
                                         deadline_s=deadline_s, fetch=fetch))


def main(argv: list[str] | None = None) -> int:
    end_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateways", type=int, default=300)
    parser.add_argument("--batches", type=int, default=20, help="batches per gateway")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between a gateway's batches")
    parser.add_argument("--kill-after", type=float, default=0.4, help="share of all batches acked before the kill")
    parser.add_argument("--restart-after", type=float, default=5.0, help="seconds the killed node stays down")
    parser.add_argument("--node-stays-down", action="store_true")
    parser.add_argument("--ack-wait", type=float, default=30.0, help="PMS_JETSTREAM_ACK_WAIT_S of the replicas")
    parser.add_argument("--resend-timeout", type=float, default=10.0, help="the collector's resend_timeout_s")
    parser.add_argument("--deadline", type=float, default=300.0)
    args = parser.parse_args(argv)
    # The gateways' reconnect warnings (hundreds when a node dies) are not the figures.
    logging.basicConfig(level=logging.ERROR)
    figures = run(gateways=args.gateways, batches=args.batches, interval_s=args.interval, kill_after=args.kill_after,
                  restart_after_s=None if args.node_stays_down else args.restart_after, ack_wait_s=args.ack_wait,
                  resend_timeout_s=args.resend_timeout, deadline_s=args.deadline)
    print("\n".join(figures.lines()), flush=True)
    return 0 if (figures.lost, figures.doubled) == (0, 0) and figures.drained_s is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
