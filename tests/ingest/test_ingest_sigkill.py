"""Acceptance 4 of issue 5: SIGKILL of ingest mid-burst loses nothing and counts nothing twice.

A test-side publisher behaves as the collector does: a durable outbox of batches per gateway,
at most `IN_FLIGHT` unacked, everything unacked resent after a timeout, batches deleted only by
the cumulative ack. `pms ingest` runs as a process on its own Mosquitto (the production tuning of
deploy/mosquitto/test-broker.conf on a free port), is SIGKILLed while the burst is being stored,
and started again. Then every reading must be stored exactly once and the slot energies must add
up to the registers' rise, not more.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from pms_common import timeutil
from pms_store import open_store
from tests.conftest import PmsProcess, free_port, wait_until
from tests.store.conftest import influxdb_url  # noqa: F401 - the session's influxd, as a fixture here

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GATEWAYS = 20
BATCHES = 150
READINGS_PER_BATCH = 20
IN_FLIGHT = 20
RESEND_AFTER_S = 3.0
T0 = datetime(2026, 3, 31, 22, tzinfo=timeutil.JST)  # the burst crosses a JST day and month end
SLOT_KWH = 0.5
RUN = uuid.uuid4().hex[:6]  # gateway ids of this run: an InfluxDB database may be shared


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text((REPO / "deploy/mosquitto/test-broker.conf").read_text() + f"\nlistener {port} 127.0.0.1\n")
    log = (tmp_path / "mosquitto.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=0.2).close() is None, 10,
                   "the test's Mosquitto listening")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def readings_of(seq: int) -> list[dict[str, Any]]:
    """Batch `seq` of every gateway: power each minute, the energy register at each slot end."""
    out: list[dict[str, Any]] = []
    for k in range((seq - 1) * READINGS_PER_BATCH, seq * READINGS_PER_BATCH):
        moment = (T0 + timedelta(minutes=k)).isoformat()
        if k % 30 == 0:
            out.append({"kind": "energy", "slot_end": moment, "reverse_kwh": 100 + SLOT_KWH * (k // 30),
                        "forward_kwh": 20.0, "register_wrap_kwh": 100000.0})
        else:
            out.append({"kind": "power", "measured_at": moment, "power_w": -k})
    return out


class Fleet:
    """GATEWAYS gateways on one connection, each with the collector's outbox discipline."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.stream = {g: uuid.uuid4().hex[:16] for g in self.gateways()}
        self.outbox: dict[str, dict[int, bytes]] = {g: {} for g in self.gateways()}  # seq -> readings JSON
        for g in self.gateways():
            for seq in range(1, BATCHES + 1):
                self.outbox[g][seq] = json.dumps(readings_of(seq)).encode()
        self.in_flight: dict[str, dict[int, float]] = {g: {} for g in self.gateways()}
        self.acked = dict.fromkeys(self.gateways(), 0)
        self.published = self.resent = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fleet-{uuid.uuid4().hex[:6]}")
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_ack
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("pms/v1/gw/+/ack", qos=1)
        self.client.loop_start()
        assert subscribed.wait(5)
        self._stop = threading.Event()
        self._pump = threading.Thread(target=self._run, daemon=True)
        self._pump.start()

    @staticmethod
    def gateways() -> list[str]:
        return [f"kill-gw-{RUN}-{n:02d}" for n in range(GATEWAYS)]

    def _on_ack(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        ack = json.loads(message.payload)
        g = ack["gateway_id"]
        with self.lock:
            if g not in self.outbox or ack["stream_id"] != self.stream[g]:
                return
            for seq in [s for s in self.outbox[g] if s <= ack["acked_seq"]]:
                del self.outbox[g][seq]
            for seq in [s for s in self.in_flight[g] if s <= ack["acked_seq"]]:
                del self.in_flight[g][seq]
            self.acked[g] = max(self.acked[g], ack["acked_seq"])

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            now = time.monotonic()
            with self.lock:
                for g in self.gateways():
                    flying = self.in_flight[g]
                    if any(now - sent > RESEND_AFTER_S for sent in flying.values()):
                        flying.clear()  # resend from the oldest unacked on, as the collector does
                        self.resent += 1
                    pending = sorted(self.outbox[g])
                    floor = pending[0] if pending else BATCHES + 1
                    after = max(flying, default=0)
                    for seq in [s for s in pending if s > after][: IN_FLIGHT - len(flying)]:
                        body = (f'{{"v":1,"gateway_id":"{g}","stream_id":"{self.stream[g]}","seq":{seq},'
                                f'"outbox_floor_seq":{floor},"sent_at":"{timeutil.now_jst().isoformat()}",'
                                f'"readings":').encode() + self.outbox[g][seq] + b"}"
                        self.client.publish(f"pms/v1/gw/{g}/readings", body, qos=1)
                        flying[seq] = now
                        self.published += 1

    def acked_share(self) -> float:
        with self.lock:
            return sum(self.acked.values()) / (GATEWAYS * BATCHES)

    def close(self) -> None:
        self._stop.set()
        self._pump.join(5)
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(params=["sqlite", "influxdb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ts.db'}"
    return str(request.getfixturevalue("influxdb_url"))


def test_sigkill_mid_burst_loses_nothing_and_counts_nothing_twice(
    broker: int, store_url: str, pms_processes: Callable[..., PmsProcess]
) -> None:
    metrics_port = free_port()
    env = {
        "PMS_MQTT_URL": f"mqtt://127.0.0.1:{broker}",
        "PMS_TSDB_URL": store_url,
        "PMS_METRICS_PORT": str(metrics_port),
        "PMS_MQTT_CLIENT_ID": "ingest-sigkill",  # the persistent session outlives the killed process
        "PMS_LOG_LEVEL": "INFO",
    }

    def start() -> PmsProcess:
        process = pms_processes(["ingest"], env)
        wait_until(lambda: _healthy(metrics_port), 30, "ingest connected to the broker")
        return process

    first = start()
    fleet = Fleet(broker)
    try:
        wait_until(lambda: fleet.acked_share() >= 0.2, 60, "a fifth of the burst stored and acked")
        first.stop(signal.SIGKILL)
        at_kill = fleet.acked_share()
        assert first.proc.returncode == -signal.SIGKILL
        assert at_kill < 0.9, f"the burst was nearly over when ingest was killed ({at_kill:.0%} acked)"

        second = start()
        wait_until(lambda: fleet.acked_share() == 1.0, 120, "every batch acked after the restart")
        assert "Traceback" not in second.log(), second.log()[-3000:]
    finally:
        fleet.close()

    store = open_store(store_url)
    try:
        power_per_gateway = sum(1 for seq in range(1, BATCHES + 1) for r in readings_of(seq) if r["kind"] == "power")
        slots_per_gateway = len(range(0, BATCHES * READINGS_PER_BATCH, 30))
        start_at, end_at = T0 - timedelta(days=1), T0 + timedelta(days=5)
        for g in Fleet.gateways():
            points = store.power_series([g], start_at, end_at)
            assert len(points) == power_per_gateway, g
            assert len({p.measured_at for p in points}) == power_per_gateway
            assert all(p.power_w == -round((p.measured_at - T0).total_seconds() / 60) for p in points)
        ids = Fleet.gateways()
        expected_kwh = SLOT_KWH * (slots_per_gateway - 1)
        # Slot energies, and each rollup, add up to the registers' rise: nothing counted twice.
        assert store.sold_kwh_between(ids, start_at, end_at) == dict.fromkeys(ids, pytest.approx(expected_kwh))
        assert store.total_sold_kwh(ids) == dict.fromkeys(ids, pytest.approx(expected_kwh))
        for interval in ("30min", "hour", "day", "month"):
            series = store.energy_series(ids, start_at, end_at, interval)  # type: ignore[arg-type]
            for g in ids:
                mine = [p for p in series if p.gateway_id == g]
                assert sum(p.sold_kwh or 0 for p in mine) == pytest.approx(expected_kwh), (interval, g)
                assert sum(p.slots for p in mine) == slots_per_gateway - 1, (interval, g)
        days = {p.period_start.date() for p in store.energy_series(ids[:1], start_at, end_at, "day")}
        assert len(days) >= 2  # the burst crossed the JST day (and month) boundary
    finally:
        store.close()
    print(f"killed at {at_kill:.0%} acked; {fleet.published} batches published, {fleet.resent} resend rounds")


def _healthy(port: int) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
        return bool(json.loads(response.read())["status"] == "ok")
