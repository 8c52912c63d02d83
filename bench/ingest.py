"""Ingest throughput: simulated gateways → real Mosquitto (QoS 1) → `pms ingest` → each store.

    .venv/bin/python bench/ingest.py [--gateways 100] [--readings-per-batch 10] [--in-flight 50]
                                     [--seconds 20] [--paced-rate 5000] [--stores sqlite,influxdb]

Starts its own Mosquitto on a free port with the production config (deploy/mosquitto/mosquitto.conf:
auth, ACL, persistence, queue limits; only paths and the port rewritten, as tests/deploy does), and
its own influxd (Debian's InfluxDB 1.x) with data in a temp dir. Then, in one run:

1. the baseline, a bare paho subscriber in its own process: live, receiving the stream while it
   is published as fast as the publisher can (the issue's yardstick), and draining the same stream
   queued in the broker while it was away (what a subscriber that does nothing else can take);
2. for each store, one `pms ingest` process, and the publisher (its own process) acting as N
   gateways: each keeps at most `--in-flight` unacked batches (the collector's max_in_flight) and
   publishes the next one when an ack arrives, for `--seconds`; then the same at a steady
   `--paced-rate` readings/s, below saturation, for the delay a fleet sees in normal operation.

Per store it prints readings/s sustained (stored and acked, over the run), readings lost (published
but not stored: must be 0; nothing is resent, so a loss cannot hide), p50/p99 delay from publish
to queryable (to the ack, which ingest sends only after the write is durable, hence queryable;
at saturation it is mostly the in-flight window queued ahead, by Little's law), the ratio to the
bare subscriber's rates, and the CPU each process used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from _support import REPO, BenchError, cpu_seconds, end_cleanly_on_sigterm, start_influxd, start_mosquitto, stop_process

MOSQUITTO_DIR = REPO / "deploy" / "mosquitto"
JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 1, 5, tzinfo=JST)
# The bench's MQTT users; its role processes inherit the passwords through the environment.
PASSWORDS: dict[str, str] = json.loads(
    os.environ.get("PMS_BENCH_PASSWORDS") or json.dumps({"ingest": secrets.token_hex(12), "sim": secrets.token_hex(12)})
)
os.environ["PMS_BENCH_PASSWORDS"] = json.dumps(PASSWORDS)


BROKER_PID = [0]

# --- servers -------------------------------------------------------------------------------------


@contextmanager
def mosquitto(workdir: Path) -> Iterator[int]:
    """The production broker config on a free port, with the users of this bench."""
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    data = workdir / "mosquitto-data"
    data.mkdir()
    data.chmod(0o777)
    acl = workdir / "acl"
    shutil.copy(MOSQUITTO_DIR / "acl", acl)
    acl.chmod(0o644)
    passwords = workdir / "passwords"
    for n, (user, password) in enumerate(PASSWORDS.items()):
        subprocess.run([passwd, *(["-c"] if n == 0 else []), "-b", str(passwords), user, password], check=True,
                       capture_output=True)
    passwords.chmod(0o644)

    def config(port: int) -> str:
        text = (MOSQUITTO_DIR / "mosquitto.conf").read_text()
        for pattern, replacement in {
            r"^listener 1883\s*$": f"listener {port} 127.0.0.1",
            r"^password_file .*$": f"password_file {passwords}",
            r"^acl_file .*$": f"acl_file {acl}",
            r"^persistence_location .*$": f"persistence_location {data}/",
            r"^log_type information$": "",
            r"^connection_messages true$": "connection_messages false",
        }.items():
            text, n = re.subn(pattern, replacement, text, flags=re.MULTILINE)
            assert n == 1, pattern
        return text

    proc, port = start_mosquitto(workdir, config)
    try:
        BROKER_PID[0] = proc.pid
        yield port
    finally:
        stop_process(proc)


@contextmanager
def influxd(workdir: Path) -> Iterator[str]:
    """Debian's influxd on free ports with its data under workdir; yields its `host:port`."""
    try:
        proc, address = start_influxd(workdir)
    except BenchError as exc:
        raise SystemExit(f"{exc}, or leave influxdb out of --stores") from None
    try:
        yield address
    finally:
        stop_process(proc)


# --- the stream ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    gateways: int
    readings_per_batch: int
    prefix: str = "bench-sat"

    def gateway_id(self, g: int) -> str:
        return f"{self.prefix}-{g:05d}"

    def payload(self, g: int, seq: int, stream_id: str, floor: int) -> bytes:
        """Batch `seq` of gateway g: power every 60 s, and the energy registers at each slot end."""
        items = []
        for i in range(self.readings_per_batch):
            k = (seq - 1) * self.readings_per_batch + i
            moment = T0 + timedelta(minutes=k)
            stamp = moment.isoformat()
            if k % 30 == 0:  # a slot ends every 30 readings: one of them is the energy register
                register = round(100.0 + g + 0.4 * (k // 30), 3)
                items.append(f'{{"kind":"energy","slot_end":"{stamp}","reverse_kwh":{register},"forward_kwh":1.0}}')
            else:
                items.append(f'{{"kind":"power","measured_at":"{stamp}","power_w":{-(k % 4000)}}}')
        sent = datetime.now(JST).isoformat()
        return (
            f'{{"v":1,"gateway_id":"{self.gateway_id(g)}","stream_id":"{stream_id}","seq":{seq},'
            f'"outbox_floor_seq":{floor},"sent_at":"{sent}","readings":[{",".join(items)}]}}'
        ).encode()


def _client(port: int, user: str, client_id: str, *, clean: bool = True) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                         clean_session=clean)
    client.username_pw_set(user, PASSWORDS[user])
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    return client


def _connect(client: mqtt.Client, port: int) -> None:
    """Connect and start the network thread; exit loudly if the broker refuses us."""
    answered = threading.Event()
    codes: list[Any] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        codes.append(reason)
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    if not answered.wait(10) or codes[0].is_failure:
        raise SystemExit(f"the broker refused {client._client_id!r}: {codes}")


# --- roles run as their own processes ------------------------------------------------------------


def role_subscriber(args: argparse.Namespace) -> None:
    """A bare paho subscriber that counts the readings batches it receives. Live: subscribed while
    the stream is published, until it goes idle. Drain: subscribes with a persistent session, goes
    away while the stream is published (the broker queues it), then comes back on "GO" (stdin) and
    receives the backlog as fast as it can, until `expected` batches arrived."""
    received = 0
    first = last = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, _m: mqtt.MQTTMessage) -> None:
        nonlocal received, first, last
        last = time.time()
        if received == 0:
            first = last
        received += 1
        if received >= args.expected:
            done.set()

    client = _client(args.port, "ingest", f"bench-bare-{args.mode}", clean=args.mode != "drain")
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    _connect(client, args.port)
    client.subscribe("pms/v1/gw/+/readings", qos=1)
    if not subscribed.wait(10):
        raise SystemExit("the bare subscriber could not subscribe")
    if args.mode == "drain":
        client.disconnect()
        client.loop_stop()
        print("READY", flush=True)
        args.expected = int(sys.stdin.readline())  # the batches published meanwhile
        _connect(client, args.port)
    else:
        print("READY", flush=True)
    while not done.wait(1.0):
        if received and time.time() - last > 5:
            break
    client.loop_stop()
    print(json.dumps({"received": received, "first": first, "last": last}), flush=True)


def role_publisher(args: argparse.Namespace) -> None:
    """N gateways on one connection (the `sim` user of the ACL). In `gateway` mode each keeps at
    most `in_flight` unacked batches and publishes the next on an ack; in `blast` mode every batch
    goes out as fast as the client can."""
    stream = Stream(args.gateways, args.readings_per_batch, "bench-paced" if args.rate else "bench-sat")
    stream_ids = [secrets.token_hex(8) for _ in range(args.gateways)]
    by_gateway = {stream.gateway_id(g): g for g in range(args.gateways)}
    next_seq = [1] * args.gateways
    acked = [0] * args.gateways
    sent_at: list[dict[int, float]] = [{} for _ in range(args.gateways)]
    delays: list[float] = []
    lock = threading.Lock()
    stop_at = time.time() + args.seconds
    finished = threading.Event()
    client = _client(args.port, "sim", f"bench-pub-{os.getpid()}")
    published = 0

    def publish(g: int) -> None:
        nonlocal published
        seq = next_seq[g]
        next_seq[g] += 1
        sent_at[g][seq] = time.time()
        client.publish(f"pms/v1/gw/{stream.gateway_id(g)}/readings", stream.payload(g, seq, stream_ids[g], 1), qos=1)
        published += 1

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.time()
        ack = json.loads(message.payload)
        g = by_gateway.get(ack["gateway_id"])
        if g is None or ack["stream_id"] != stream_ids[g]:
            return
        with lock:
            for seq in range(acked[g] + 1, ack["acked_seq"] + 1):
                delays.append(now - sent_at[g].pop(seq))
            acked[g] = max(acked[g], ack["acked_seq"])
            if now < stop_at and not args.rate:
                while next_seq[g] - 1 - acked[g] < args.in_flight:
                    publish(g)
            elif now >= stop_at and all(next_seq[i] - 1 == acked[i] for i in range(args.gateways)):
                finished.set()

    subscribed = threading.Event()
    client.on_message = on_message
    client.on_subscribe = lambda *_a: subscribed.set()
    _connect(client, args.port)
    if args.mode == "gateway":
        client.subscribe("pms/v1/gw/+/ack", qos=1)
        if not subscribed.wait(10):
            raise SystemExit("the publisher could not subscribe to the acks")
    started = time.time()
    if args.mode == "gateway" and args.rate:
        # Paced: batches at an even `rate` readings/s, round robin over the gateways.
        interval = args.readings_per_batch / args.rate
        due, g = time.time(), 0
        while due < stop_at:
            time.sleep(max(0.0, min(0.002, due - time.time())))
            with lock:
                while due <= time.time() and due < stop_at:  # whatever fell due meanwhile
                    if next_seq[g] - 1 - acked[g] < args.in_flight:
                        publish(g)
                    g = (g + 1) % args.gateways
                    due += interval
        with lock:
            if all(next_seq[i] - 1 == acked[i] for i in range(args.gateways)):
                finished.set()
    elif args.mode == "gateway":
        with lock:
            for g in range(args.gateways):
                for _ in range(args.in_flight):
                    publish(g)
    if args.mode == "blast":
        g = 0
        while time.time() < stop_at and not (args.max_batches and published >= args.max_batches):
            for _ in range(100):
                publish(g)
                g = (g + 1) % args.gateways
            while len(client._out_messages) > 5000:  # keep paho's queue bounded
                time.sleep(0.001)
        # Wait until paho has handed everything to the broker (PUBACK received).
        while client._out_messages:
            time.sleep(0.01)
        ended = time.time()
    else:
        # Every batch must be acked (nothing is resent): a batch that never is, is lost.
        finished.wait(args.seconds + args.drain_timeout)
        ended = time.time()
    client.loop_stop()
    with lock:
        unacked = sum(next_seq[g] - 1 - acked[g] for g in range(args.gateways))
        result = {
            "published_batches": published,
            "unacked_batches": unacked if args.mode == "gateway" else None,
            "started": started,
            "ended": ended,
            "delays": sorted(delays),
            "cpu_s": time.process_time(),
        }
    print(json.dumps(result), flush=True)


# --- the orchestration ---------------------------------------------------------------------------


def _role(role: str, port: int, args: argparse.Namespace, **extra: Any) -> subprocess.Popen[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--port", str(port),
            "--gateways", str(args.gateways), "--readings-per-batch", str(args.readings_per_batch),
            "--seconds", str(args.seconds), "--in-flight", str(args.in_flight)]
    for key, value in extra.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"a bench process failed ({proc.returncode}):\n{out[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def baseline(port: int, args: argparse.Namespace) -> tuple[float, float]:
    """Readings/s a bare paho subscriber receives: live, the stream as the publisher offers it (the
    issue's yardstick), and draining a backlog queued in the broker (what a subscriber that does
    nothing else can take: the stricter one)."""
    rates = []
    for mode in ("live", "drain"):
        subscriber = _role("subscriber", port, args, mode=mode, expected=10**12)
        assert subscriber.stdout is not None
        assert subscriber.stdout.readline().strip() == "READY"
        # The drain backlog stays under the broker's max_queued_messages (100,000).
        publisher = _role("publisher", port, args, mode="blast", max_batches=90_000 if mode == "drain" else 0)
        sent = _result(publisher, args.seconds + 120)
        if mode == "drain":
            assert subscriber.stdin is not None
            subscriber.stdin.write(f"{sent['published_batches']}\n")
            subscriber.stdin.flush()
        got = _result(subscriber, 300)
        messages = got["received"]
        if messages < sent["published_batches"]:
            print(f"  (the bare subscriber missed {sent['published_batches'] - messages:,} of "
                  f"{sent['published_batches']:,} batches)")
        rate = messages * args.readings_per_batch / max(got["last"] - got["first"], 1e-9)
        offered = sent["published_batches"] * args.readings_per_batch / (sent["ended"] - sent["started"])
        what = (f"live, the publisher offering {offered:,.0f}/s" if mode == "live"
                else "draining a backlog queued in the broker")
        print(f"bare paho subscriber: {rate:,.0f} readings/s received ({what}; {messages:,} batches)")
        rates.append(rate)
    return rates[0], rates[1]


def stored_readings(store_url: str, gateways: int) -> int:
    ids = [Stream(gateways, 1, prefix).gateway_id(g) for g in range(gateways)
           for prefix in ("bench-sat", "bench-paced")]
    if store_url.startswith("sqlite:///"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            marks = ",".join("?" * len(ids))
            power = conn.execute(f"SELECT count(*) FROM power WHERE gateway_id IN ({marks})", ids).fetchone()[0]
            energy = conn.execute(f"SELECT count(*) FROM energy_slot WHERE gateway_id IN ({marks})", ids).fetchone()[0]
            return int(power) + int(energy)
    from pms_store.influx import InfluxStore

    store = InfluxStore.from_url(store_url)
    try:
        total = 0
        for measurement, field in (("power", "power_w"), ("energy_slot", "backfilled")):
            for s in store._query(f"SELECT count({field}) FROM {measurement} WHERE gateway_id =~ /^bench-/"):
                total += sum(int(row["count"]) for row in s.rows)
        return total
    finally:
        store.close()


def run_store(
    name: str, store_url: str, port: int, args: argparse.Namespace, workdir: Path, bare: tuple[float, float]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    env.update({
        "PMS_MQTT_URL": f"mqtt://ingest:{PASSWORDS['ingest']}@127.0.0.1:{port}",
        "PMS_TSDB_URL": store_url,
        "PMS_METRICS_PORT": "0",
        "PMS_MQTT_CLIENT_ID": f"bench-ingest-{name}",
        "PMS_LOG_LEVEL": "WARNING",
    })
    log = workdir / f"ingest-{name}.log"
    with log.open("wb") as out:
        profile = ["-m", "cProfile", "-o", args.profile + f".{name}"] if args.profile else []
        ingest = subprocess.Popen([sys.executable, *profile, "-m", "pms.cli", "ingest"], env=env, cwd=workdir,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        time.sleep(2.0)  # connected and subscribed (a persistent session would keep the first messages anyway)
        if ingest.poll() is not None:
            raise SystemExit(f"ingest exited:\n{log.read_text()[-3000:]}")
        cpu_before, broker_before = cpu_seconds([ingest.pid]), cpu_seconds([BROKER_PID[0]])
        publisher = _role("publisher", port, args, mode="gateway", drain_timeout=args.drain_timeout, rate=0)
        sent = _result(publisher, args.seconds + args.drain_timeout + 60)
        ingest_cpu = cpu_seconds([ingest.pid]) - cpu_before
        broker_cpu = cpu_seconds([BROKER_PID[0]]) - broker_before
        paced = None
        if args.paced_rate:
            publisher = _role("publisher", port, args, mode="gateway", drain_timeout=args.drain_timeout,
                              rate=args.paced_rate)
            paced = _result(publisher, args.seconds + args.drain_timeout + 60)
    finally:
        stop_process(ingest)
    published = (sent["published_batches"] + (paced["published_batches"] if paced else 0)) * args.readings_per_batch
    stored = stored_readings(store_url, args.gateways)
    delays = sent["delays"]
    acked_readings = len(delays) * args.readings_per_batch
    elapsed = sent["ended"] - sent["started"]
    rate = acked_readings / elapsed
    p50 = statistics.median(delays) if delays else float("nan")
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))] if delays else float("nan")
    print(f"{name}: {rate:,.0f} readings/s sustained over {elapsed:.1f} s; readings lost: {published - stored}"
          f" (published {published:,}, stored {stored:,}, unacked batches {sent['unacked_batches']});"
          f" publish→queryable p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms;"
          f" {rate / bare[0]:.2f} × the bare subscriber live, {rate / bare[1]:.2f} × draining")
    if paced:
        d = paced["delays"]
        offered = len(d) * args.readings_per_batch / (paced["ended"] - paced["started"])
        print(f"  at a steady {args.paced_rate:,.0f} readings/s offered ({offered:,.0f} acked/s): publish→queryable"
              f" p50 {statistics.median(d) * 1000:.0f} ms, p99 {d[int(len(d) * 0.99)] * 1000:.0f} ms,"
              f" unacked batches {paced['unacked_batches']}")
    print(f"  CPU share over the run: ingest {ingest_cpu / elapsed:.0%}, gateways' publisher"
          f" {sent['cpu_s'] / elapsed:.0%}, mosquitto {broker_cpu / elapsed:.0%} (of one core each)")


def main() -> None:
    end_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateways", type=int, default=100)
    parser.add_argument("--readings-per-batch", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the gateways publish")
    parser.add_argument("--in-flight", type=int, default=50,
                        help="unacked batches per gateway at most (the collector's max_in_flight default)")
    parser.add_argument("--stores", default="sqlite,influxdb")
    parser.add_argument("--paced-rate", type=float, default=5000,
                        help="then offer this many readings/s evenly, for the delay below saturation (0: skip)")
    parser.add_argument("--rate", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--profile", help="write a cProfile of each ingest run to PROFILE.<store>")
    parser.add_argument("--role", choices=["subscriber", "publisher"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["gateway", "blast", "live", "drain"], help=argparse.SUPPRESS)
    parser.add_argument("--max-batches", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "subscriber":
        role_subscriber(args)
        return
    if args.role == "publisher":
        role_publisher(args)
        return
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    print(f"{args.gateways} gateways, {args.readings_per_batch} readings per batch, {args.in_flight} in flight each,"
          f" {args.seconds:.0f} s; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="pms-bench-") as tmp:
        workdir = Path(tmp)
        workdir.chmod(0o755)  # the broker reads its files after dropping root
        with mosquitto(workdir) as port:
            bare = baseline(port, args)
            for name in stores:
                if name == "sqlite":
                    run_store("sqlite", f"sqlite:///{workdir / 'bench-ts.db'}", port, args, workdir, bare)
                elif name == "influxdb":
                    with influxd(workdir) as address:
                        run_store("influxdb", f"influxdb://{address}/pms_bench", port, args, workdir, bare)
                else:
                    raise SystemExit(f"unknown store {name!r}: sqlite or influxdb")


if __name__ == "__main__":
    main()
