"""A sped-up soak of the whole gateway path, with every fault at once.

`pms sim --module` (a virtual module on a pty, meter faults scheduled) → `pms collector` (serial
link) → a Mosquitto of our own → `pms ingest` → SQLite store, and `pms alerts` → a SQLite registry.
Meanwhile: a broker outage of hours of meter time, broker restarts with persistence off, ingest
killed twice, the collector killed once (all SIGKILL); and the meter misbehaves: its link goes
silent, its sessions end, its E2 history of a day disagrees with the registers it pushed live, its
D3 reads 0 for an hour, its clock runs 20 minutes ahead for hours.

The simulator and the collector share one sped-up world time: both are given the same start, speed
and Unix-time anchor (`pms sim --anchor-epoch`, PMS_CLOCK_*), so the collector's gateway clock
judges the meter's clock and stamps power as a real gateway's NTP clock would. The meter faults are
counted from the anchor too, so they fall at known meter times.

The result holds what the store and the registry hold: the slots (with their registers, against
the simulated meter's own), each day's balance, the power samples' times, and the meter events.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from echonet.sim.meter import MeterProfile, SimulatedMeter
from pms_common import timeutil
from pms_registry import Registry
from tests.collector.broker import OwnBroker
from tests.conftest import PmsProcess

RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "0123456789AB"
START = datetime(2026, 11, 2, 0, 0, 5, tzinfo=timeutil.JST)
# Meter faults as `pms sim --fault` takes them (KIND@AFTER_S[:SECONDS]): when, as a fraction of the
# run, and for how many meter hours. A day of the week is 1/7 ≈ 0.143 of the run.
METER_FAULTS: tuple[tuple[str, float, float], ...] = (
    ("no-response", 0.08, 5), ("event29", 0.11, 0), ("garbage", 0.14, 0), ("er10", 0.17, 0), ("arib", 0.22, 3.3),
    ("join-failure", 0.26, 0), ("event29", 0.27, 0),
    # Day 3 (all read live so far) gets a history that disagrees with the registers pushed live up to
    # 07:48; the link then goes silent, and the backfill of that gap reads the day's E2: a conflict,
    # read again across the collector's kill, and the live values stand.
    ("history-mismatch", 0.475, 0), ("no-response", 0.48, 6.7), ("garbage", 0.49, 0),
    # D3 = 0 for an hour, on a quiet link: the meter checks read it (a rejoin might take longer than that).
    ("scale-zero", 0.65, 1.0), ("event29", 0.70, 0),
    ("clock-ahead", 0.76, 5), ("garbage", 0.80, 0), ("event29", 0.88, 0), ("no-response", 0.92, 3.3))
# The meter events the faults above must each raise once (as services/alerts/pms_alerts/meter_faults.py
# names them), and whether each is an episode that recovers.
METER_EVENTS = {"meter_history_conflict": False, "meter_scale_invalid": True, "meter_clock_skew": True}


@dataclass
class SoakResult:
    slots_expected: list[datetime]
    slots_stored: list[datetime]
    backfilled: int
    days: list[tuple[str, float, float, float, float]] = field(default_factory=list)  # day, sold, Δreverse, ...
    # Slots whose stored registers or energies differ from the simulated meter's own: (slot, what).
    wrong_slots: list[tuple[datetime, str]] = field(default_factory=list)
    power_times: list[datetime] = field(default_factory=list)  # measured_at of the stored power samples
    power_interval: timedelta = timedelta(0)  # meter time between two power reads
    # Meter time spans in which the collector could not read power: its kill, the meter's link faults.
    power_pauses: list[tuple[datetime, datetime]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)  # (kind, state) of the gateway's meter events
    timeline: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[datetime]:
        stored = set(self.slots_stored)
        return [s for s in self.slots_expected if s not in stored]

    def power_gaps(self, longer_than: timedelta) -> list[tuple[datetime, datetime]]:
        """Consecutive power samples further apart than `longer_than`, outside the pauses."""
        gaps = []
        for before, after in itertools.pairwise(self.power_times):
            paused = any(start <= after and before <= end for start, end in self.power_pauses)
            if after - before > longer_than and not paused:
                gaps.append((before, after))
        return gaps


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    env.update({f"PMS_{k.upper()}": v for k, v in values.items()})
    return env


def run_soak(workdir: Path, *, days: int, speed: float, gateway_id: str,
             broker_outage_s: float = 6.0, settle_s: float = 90.0) -> SoakResult:
    run_s = days * 86400 / speed
    tty = workdir / "ttyWISUN"
    ts_db = workdir / "ts.db"
    registry_db = workdir / "registry.db"
    broker = OwnBroker(workdir)
    broker.start()
    processes: list[PmsProcess] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> PmsProcess:
        process = PmsProcess(args, env, workdir, workdir / f"{name}-{len(processes)}.log")
        processes.append(process)
        return process

    # One world time for the meter and the gateway: START at `anchor`, `speed` times real time.
    anchor = time.time() + 0.5
    t0 = time.monotonic() + (anchor - time.time())  # the anchor on this process's monotonic clock
    faults = [f"--fault={kind}@{share * run_s:.3f}" + (f":{hours * 3600 / speed:.3f}" if hours else "")
              for kind, share, hours in METER_FAULTS]
    start("sim", ["sim", "--module", "bp35c0", "--link", str(tty), "--rbid", RBID, "--password", PASSWORD,
                  "--speed", str(speed), "--start", START.isoformat(), "--anchor-epoch", f"{anchor:.6f}",
                  "--min-scan-duration", "4", *faults], _env())
    ingest_env = _env(mqtt_url=broker.url, tsdb_url=f"sqlite:///{ts_db}", metrics_port="0",
                      mqtt_client_id=f"ingest-{gateway_id}")
    # Alerts evaluates on the real clock while the world runs `speed` times faster: it evaluates often
    # (a meter fault of an hour lasts 0.6 s here) and its meter rules clear at once.
    alerts_env = _env(mqtt_url=broker.url, registry_url=f"sqlite:///{registry_db}", tsdb_url=f"sqlite:///{ts_db}",
                      metrics_port="0", mqtt_client_id=f"alerts-{gateway_id}", tick_s="0.05", evaluate_s="0.05")
    registry = Registry(f"sqlite:///{registry_db}")
    registry.migrate()
    for rule in registry.list_alert_rules():
        if rule.kind in METER_EVENTS and rule.scope == "global":
            registry.update_alert_rule(rule.rule_id, at=rule.updated_at, raise_for_s=0, clear_for_s=0)
    registry.close()
    power_interval_s = 1.0
    collector_env = _env(mqtt_url=broker.url, device=str(tty), broute_id=RBID, broute_password=PASSWORD,
                         gateway_id=gateway_id, power_interval_s=str(power_interval_s), heartbeat_interval_s="1",
                         slot_fallback_s="2", resend_timeout_s="3", read_timeout_s="5", metrics_port="0",
                         outbox_path=str(workdir / "outbox.db"),
                         # An hour of D3 = 0 is 0.6 s here: the meter is checked every 20 meter minutes
                         # (what it finds goes out in a heartbeat at once).
                         meter_check_interval_s=str(1200 / speed),
                         # A history that disagrees is read 3 times before the live values stand.
                         backfill_retry_s="1",
                         # The day before the first: enough to show the first start's walk back.
                         backfill_days="1",
                         clock_start=START.isoformat(), clock_speed=str(speed), clock_anchor_epoch=f"{anchor:.6f}")
    deadline = time.monotonic() + 10
    while not tty.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    ingest = start("ingest", ["ingest"], ingest_env)
    start("alerts", ["alerts"], alerts_env)
    collector = start("collector", ["collector"], collector_env)
    timeline: list[str] = []
    pauses: list[tuple[datetime, datetime]] = []

    def world(monotonic: float) -> datetime:
        return START + timedelta(seconds=(monotonic - t0) * speed)

    def at(share: float, what: str, action: Callable[[], None]) -> None:
        while time.monotonic() - t0 < share * run_s:
            time.sleep(0.05)
        timeline.append(f"{time.monotonic() - t0:6.1f} s ({world(time.monotonic()):%a %H:%M}): {what}")
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
        killed = time.monotonic()
        nonlocal_collector[0].stop(signal.SIGKILL)
        time.sleep(4)
        nonlocal_collector[0] = start("collector", ["collector"], collector_env)
        # Power resumes once the new process has started, joined and checked the meter.
        pauses.append((world(killed), world(time.monotonic() + 10)))

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
        events: list[tuple[str, str]] = []
        settle_end = time.monotonic() + settle_s
        while time.monotonic() < settle_end:
            stored = _stored_slots(ts_db, gateway_id, first, expected[-1])
            events = _meter_events(registry_db, gateway_id)
            recovered = all(state != "open" for _, state in events)
            if len(stored) >= len(expected) and {kind for kind, _ in events} >= set(METER_EVENTS) and recovered:
                break
            time.sleep(1)
        timeline.append(f"{time.monotonic() - t0:6.1f} s: checked the store ({len(stored)} slots) and the "
                        f"registry ({len(events)} meter events)")
        timeline += [f"  meter fault {kind} at {share * run_s:.1f} s ({world(t0 + share * run_s):%a %H:%M})"
                     for kind, share, _ in METER_FAULTS]
        result = SoakResult(expected, stored, _backfilled(ts_db, gateway_id), timeline=timeline, events=events)
        result.days = _day_balances(ts_db, gateway_id, first, days)
        result.wrong_slots = _wrong_slots(ts_db, gateway_id, first, expected[-1])
        result.power_times = _power_times(ts_db, gateway_id, first, expected[-1])
        result.power_interval = timedelta(seconds=power_interval_s * speed)
        result.power_pauses = pauses + _link_fault_spans(speed, run_s)
        return result
    finally:
        for process in processes:
            process.stop(signal.SIGKILL if process.alive() else signal.SIGTERM, timeout=5)
        broker.stop()


def _link_fault_spans(speed: float, run_s: float) -> list[tuple[datetime, datetime]]:
    """Meter time spans in which the meter's link faults keep the collector from reading power: the
    fault itself, then the request it was waiting on timing out (5 s) and the session coming back."""
    silencing = {"no-response", "arib", "join-failure", "event29", "garbage", "er10"}
    recovery = timedelta(seconds=8 * speed)
    spans = []
    for kind, share, hours in METER_FAULTS:
        if kind in silencing:
            begin = START + timedelta(seconds=share * run_s * speed)
            spans.append((begin, begin + timedelta(hours=hours) + recovery))
    return spans


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


def _meter(first: datetime) -> SimulatedMeter:
    """The simulated meter as `pms sim` builds it for the soak (its default profile, installed 100 days
    before the start): its registers are a function of time, so what the store must hold is known."""
    installed = (first - timedelta(days=100)).replace(hour=0, minute=0, second=0, microsecond=0)
    return SimulatedMeter(MeterProfile(installed_at=installed))


def _wrong_slots(ts_db: Path, gateway_id: str, first: datetime, last: datetime) -> list[tuple[datetime, str]]:
    """Stored slots whose registers, or whose energy (bought, sold), differ from the meter's own."""
    meter = _meter(first)
    step = meter.profile.coefficient * meter.profile.unit

    def registers(slot: datetime) -> tuple[float, float]:
        forward, reverse = meter.registers_kwh_at_slot(slot)
        return round(int(forward / step + 1e-9) * step, 6), round(int(reverse / step + 1e-9) * step, 6)

    rows = _query(ts_db, "SELECT slot_end, forward_kwh, reverse_kwh, bought_kwh, sold_kwh FROM energy_slot"
                  " WHERE gateway_id = ? AND slot_end > ? AND slot_end <= ? ORDER BY slot_end",
                  gateway_id, timeutil.to_epoch(first), timeutil.to_epoch(last))
    wrong = []
    for slot_epoch, forward, reverse, bought, sold in rows:
        slot = timeutil.from_epoch(float(str(slot_epoch)))
        true_forward, true_reverse = registers(slot)
        before_forward, before_reverse = registers(slot - timeutil.SLOT)
        stored = {"forward_kwh": forward, "reverse_kwh": reverse, "bought_kwh": bought, "sold_kwh": sold}
        truth = {"forward_kwh": true_forward, "reverse_kwh": true_reverse,
                 "bought_kwh": true_forward - before_forward, "sold_kwh": true_reverse - before_reverse}
        for name, value in stored.items():
            if value is None or not math.isclose(float(str(value)), truth[name], abs_tol=1e-6):
                wrong.append((slot, f"{name} {value}, the meter's {truth[name]:.6f}"))
    return wrong


def _power_times(ts_db: Path, gateway_id: str, first: datetime, last: datetime) -> list[datetime]:
    rows = _query(ts_db, "SELECT measured_at FROM power WHERE gateway_id = ? AND measured_at > ?"
                  " AND measured_at <= ? ORDER BY measured_at",
                  gateway_id, timeutil.to_epoch(first), timeutil.to_epoch(last))
    return [timeutil.from_epoch(float(str(r[0]))) for r in rows]


def _meter_events(registry_db: Path, gateway_id: str) -> list[tuple[str, str]]:
    """(kind, state) of the gateway's meter events in the registry, oldest first."""
    if not registry_db.exists():
        return []
    with sqlite3.connect(f"file:{registry_db}?mode=ro", uri=True, timeout=10) as db:
        try:
            rows = db.execute("SELECT kind, state FROM events WHERE gateway_id = ? AND kind IN (?, ?, ?)"
                              " ORDER BY event_id", (gateway_id, *METER_EVENTS)).fetchall()
        except sqlite3.OperationalError:
            return []  # alerts has not created the tables yet
    return [(str(kind), str(state)) for kind, state in rows]
