"""A sped-up soak of the whole gateway path, with every fault at once.

`pms sim --module` (a virtual module on a pty, meter faults scheduled) → `pms collector` (serial
link) → a Mosquitto of our own → `pms ingest` → SQLite store. Meanwhile: a broker outage of
hours of meter time, broker restarts with persistence off, ingest killed twice, the collector
killed once (all SIGKILL). The result says whether every slot is stored once and whether each
day's slot energies add up to the difference of its first and last registers.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from pms_common import timeutil
from tests.collector.broker import OwnBroker
from tests.conftest import PmsProcess

RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "0123456789AB"
START = datetime(2026, 11, 2, 0, 0, 5, tzinfo=timeutil.JST)
# (meter faults as `pms sim --fault` takes them: KIND@AFTER_S[:SECONDS], as fractions of the run)
METER_FAULTS = (("no-response", 0.08, 3), ("event29", 0.11, 0), ("garbage", 0.14, 0), ("er10", 0.17, 0),
                ("arib", 0.22, 2), ("join-failure", 0.26, 0), ("event29", 0.27, 0), ("no-response", 0.48, 4),
                ("garbage", 0.49, 0), ("event29", 0.70, 0), ("garbage", 0.80, 0), ("event29", 0.88, 0),
                ("no-response", 0.92, 2))


@dataclass
class SoakResult:
    slots_expected: list[datetime]
    slots_stored: list[datetime]
    backfilled: int
    days: list[tuple[str, float, float, float, float]] = field(default_factory=list)  # day, sold, Δreverse, ...
    timeline: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[datetime]:
        stored = set(self.slots_stored)
        return [s for s in self.slots_expected if s not in stored]


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    env.update({f"PMS_{k.upper()}": v for k, v in values.items()})
    return env


def run_soak(workdir: Path, *, days: int, speed: float, gateway_id: str,
             broker_outage_s: float = 6.0, settle_s: float = 90.0) -> SoakResult:
    run_s = days * 86400 / speed
    tty = workdir / "ttyWISUN"
    ts_db = workdir / "ts.db"
    broker = OwnBroker(workdir)
    broker.start()
    processes: list[PmsProcess] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> PmsProcess:
        process = PmsProcess(args, env, workdir, workdir / f"{name}-{len(processes)}.log")
        processes.append(process)
        return process

    faults = [f"--fault={kind}@{share * run_s:.2f}" + (f":{seconds}" if seconds else "")
              for kind, share, seconds in METER_FAULTS]
    start("sim", ["sim", "--module", "bp35c0", "--link", str(tty), "--rbid", RBID, "--password", PASSWORD,
                  "--speed", str(speed), "--start", START.isoformat(), "--min-scan-duration", "4", *faults], _env())
    t0 = time.monotonic()
    ingest_env = _env(mqtt_url=broker.url, tsdb_url=f"sqlite:///{ts_db}", metrics_port="0",
                      mqtt_client_id=f"ingest-{gateway_id}")
    collector_env = _env(mqtt_url=broker.url, device=str(tty), broute_id=RBID, broute_password=PASSWORD,
                         gateway_id=gateway_id, power_interval_s="1", slot_fallback_s="2", resend_timeout_s="3",
                         read_timeout_s="5", metrics_port="0", outbox_path=str(workdir / "outbox.db"))
    deadline = time.monotonic() + 10
    while not tty.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ingest = start("ingest", ["ingest"], ingest_env)
    collector = start("collector", ["collector"], collector_env)
    timeline: list[str] = []

    def at(share: float, what: str, action: Callable[[], None]) -> None:
        while time.monotonic() - t0 < share * run_s:
            time.sleep(0.05)
        timeline.append(f"{time.monotonic() - t0:6.1f} s: {what}")
        action()

    def restart_broker() -> None:
        broker.stop()
        broker.start()

    def outage() -> None:
        broker.stop()
        time.sleep(broker_outage_s)
        broker.start()

    nonlocal_ingest = [ingest]
    nonlocal_collector = [collector]

    def kill_ingest() -> None:
        nonlocal_ingest[0].stop(signal.SIGKILL)
        time.sleep(2)
        nonlocal_ingest[0] = start("ingest", ["ingest"], ingest_env)

    def kill_collector() -> None:
        nonlocal_collector[0].stop(signal.SIGKILL)
        time.sleep(4)
        nonlocal_collector[0] = start("collector", ["collector"], collector_env)

    try:
        at(0.18, f"broker outage of {broker_outage_s} s ({broker_outage_s * speed / 3600:.1f} h of meter time)",
           outage)
        at(0.35, "ingest killed (SIGKILL)", kill_ingest)
        at(0.42, "broker restarted (persistence off)", restart_broker)
        at(0.55, "collector killed (SIGKILL)", kill_collector)
        at(0.75, "ingest killed (SIGKILL)", kill_ingest)
        at(0.85, "broker restarted (persistence off)", restart_broker)
        at(1.0, "the simulated period is over", lambda: None)
        first = START.replace(second=0)
        expected = [first + timeutil.SLOT * (i + 1) for i in range(days * 48)]
        stored: list[datetime] = []
        settle_end = time.monotonic() + settle_s
        while time.monotonic() < settle_end:
            stored = _stored_slots(ts_db, gateway_id, first, expected[-1])
            if len(stored) >= len(expected):
                break
            time.sleep(1)
        timeline.append(f"{time.monotonic() - t0:6.1f} s: checked the store ({len(stored)} slots)")
        result = SoakResult(expected, stored, _backfilled(ts_db, gateway_id), timeline=timeline)
        result.days = _day_balances(ts_db, gateway_id, first, days)
        return result
    finally:
        for process in processes:
            process.stop(signal.SIGKILL if process.alive() else signal.SIGTERM, timeout=5)
        broker.stop()


def _query(ts_db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    if not ts_db.exists():
        return []
    with sqlite3.connect(f"file:{ts_db}?mode=ro", uri=True, timeout=10) as db:
        try:
            return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []  # ingest has not created the tables yet


def _stored_slots(ts_db: Path, gateway_id: str, first: datetime, last: datetime) -> list[datetime]:
    rows = _query(ts_db, "SELECT slot_end FROM energy_slot WHERE gateway_id = ? AND slot_end > ? AND slot_end <= ?"
                  " AND forward_kwh IS NOT NULL AND reverse_kwh IS NOT NULL ORDER BY slot_end",
                  gateway_id, timeutil.to_epoch(first), timeutil.to_epoch(last))
    return [timeutil.from_epoch(float(str(r[0]))) for r in rows]


def _backfilled(ts_db: Path, gateway_id: str) -> int:
    rows = _query(ts_db, "SELECT count(*) FROM energy_slot WHERE gateway_id = ? AND backfilled = 1", gateway_id)
    return int(str(rows[0][0])) if rows else 0


def _day_balances(ts_db: Path, gateway_id: str, first: datetime,
                  days: int) -> list[tuple[str, float, float, float, float]]:
    """Per day: (day, Σ sold, last − first reverse register, Σ bought, last − first forward register)."""
    balances = []
    for index in range(days):
        start, end = first + timedelta(days=index), first + timedelta(days=index + 1)
        rows = _query(ts_db, "SELECT slot_end, forward_kwh, reverse_kwh, bought_kwh, sold_kwh FROM energy_slot"
                      " WHERE gateway_id = ? AND slot_end >= ? AND slot_end <= ? ORDER BY slot_end",
                      gateway_id, timeutil.to_epoch(start), timeutil.to_epoch(end))
        if len(rows) < 2:
            balances.append((start.date().isoformat(), float("nan"), 0.0, float("nan"), 0.0))
            continue
        inner = rows[1:]  # the day's slots end in (start, end]; the row at `start` is the first register
        sold = sum(float(str(r[4])) for r in inner if r[4] is not None)
        bought = sum(float(str(r[3])) for r in inner if r[3] is not None)
        d_reverse = float(str(rows[-1][2])) - float(str(rows[0][2]))
        d_forward = float(str(rows[-1][1])) - float(str(rows[0][1]))
        balances.append((start.date().isoformat(), sold, d_reverse, bought, d_forward))
    return balances
