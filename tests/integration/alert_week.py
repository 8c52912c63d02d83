"""A scripted week of a small fleet, run against the real alerts service (issue 13, acceptance 1).

Six plants and a spare gateway bound to no plant, Monday 2026-06-01 00:00 JST to Monday 00:00:

- P1 steady: nothing goes wrong.
- P2 outage: its gateway loses its connection Tuesday 10:00–14:00 (last will), under the shipped
  gateway_offline rule (raise after 5 min, clear after 5 min).
- P3 flapping: its gateway drops for 5 minutes every 10 minutes Wednesday 09:00–09:55, under a plant
  rule that raises and clears at once: four raise/clear pairs, the fifth raise is held (flapping)
  until its clear condition has held an hour.
- P4 night: a plant rule with `daylight_only`; its gateway is offline Thursday 22:00–Friday 02:00
  (nothing: night) and Friday 23:00–Saturday 08:00 (raised at the first evaluation after sunrise).
- P5 meter faults: its meter's clock is 20 minutes ahead Monday 12:00–15:00, its scale is refused
  Tuesday 09:00–11:00, and its E2/E4 history conflicts Thursday 13:00 (information).
- P6 weather: a cloudy Wednesday for everyone, and on sunny Saturday its output drops to 0
  11:00–13:00 while the irradiance is ~900 W/m² (helper G's no_generation).
- gw-spare (no plant) is offline Sunday 10:00–10:30.

Alerts is restarted after the Tuesday 10:00 evaluation, while P2's gateway_offline is pending and
P5's meter_scale_invalid is firing.

The run steps a file clock (PMS_ALERTS_CLOCK_FILE): 5-minute steps around the scripted changes and
30-minute steps elsewhere. Each step publishes the heartbeats and status changes of time t (while
the service's clock still shows the step before), waits until the service has handled them, writes
what ingest would have stored up to t (power every 5 minutes, 30-minute registers, weather), then
moves the clock to t and waits until the `pms_alerts_evaluated_until_seconds` gauge reaches t.
"""

from __future__ import annotations

import math
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from pms_common.messages import BackfillStatus, EnergyReading, GatewayStatus, Heartbeat, PowerReading, Weather
from pms_common.timeutil import JST
from pms_registry import Registry
from pms_store import open_store
from pms_store.base import GatewayReadings
from tests.collector.broker import OwnBroker
from tests.conftest import PmsProcess, free_port

START = datetime(2026, 6, 1, 0, 0, tzinfo=JST)  # a Monday
END = START + timedelta(days=7)
FINE = timedelta(minutes=5)
COARSE = timedelta(minutes=30)
HEARTBEAT_INTERVAL_S = 900  # declared in the heartbeats: silence means offline only after 45 min


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Day 0 = Monday."""
    return START + timedelta(days=day, hours=hour, minutes=minute)


@dataclass(frozen=True)
class PlantSpec:
    name: str
    gateway_id: str
    latitude: float
    longitude: float
    capacity_kw: float


PLANTS = (
    PlantSpec("P1", "gw-p1", 35.68, 139.77, 50.0),
    PlantSpec("P2", "gw-p2", 34.69, 135.50, 50.0),
    PlantSpec("P3", "gw-p3", 35.18, 136.91, 40.0),
    PlantSpec("P4", "gw-p4", 35.0, 135.0, 30.0),
    PlantSpec("P5", "gw-p5", 43.06, 141.35, 60.0),
    PlantSpec("P6", "gw-p6", 33.59, 130.40, 49.5),
)
SPARE = "gw-spare"
GATEWAYS = (*(p.gateway_id for p in PLANTS), SPARE)

# Offline periods [from, until) per gateway: a last will ("connection lost") at `from`, back online at `until`.
OUTAGES: dict[str, list[tuple[datetime, datetime]]] = {
    "gw-p2": [(at(1, 10), at(1, 14))],
    "gw-p3": [(at(2, 9, m), at(2, 9, m + 5)) for m in range(0, 60, 10)],
    "gw-p4": [(at(3, 22), at(4, 2)), (at(4, 23), at(5, 8))],
    SPARE: [(at(6, 10), at(6, 10, 30))],
}
CLOCK_SKEW = ("gw-p5", at(0, 12), at(0, 15), 1200.0)  # gateway, from, until, skew (s)
SCALE_REFUSED = ("gw-p5", at(1, 9), at(1, 11), "D3 (the energy coefficient) is 0, outside 1–999999")
HISTORY_CONFLICT = ("gw-p5", at(3, 13), "E2/E4 of 2026-06-04 disagree with 2 slots read live")
NO_OUTPUT = ("gw-p6", at(5, 11), at(5, 13))  # sold power 0 in full sun (helper G's no_generation)
CLOUDY_DAYS = {2}  # Wednesday
RESTART_AFTER = at(1, 10)
# Besides the changes above, where a 5-minute step matters: P4's Saturday sunrise (04:45:56 there).
FINE_WINDOWS = [(at(5, 4), at(5, 5, 30))]


def offline(gateway_id: str, t: datetime) -> bool:
    return any(start <= t < end for start, end in OUTAGES.get(gateway_id, []))


def change_times() -> list[datetime]:
    times = [t for periods in OUTAGES.values() for period in periods for t in period]
    times += [CLOCK_SKEW[1], CLOCK_SKEW[2], SCALE_REFUSED[1], SCALE_REFUSED[2], HISTORY_CONFLICT[1],
              NO_OUTPUT[1], NO_OUTPUT[2], RESTART_AFTER]
    return times


def steps() -> list[datetime]:
    """The clock's steps: 5 minutes from just before a change to 70 minutes after it (a clear timer
    of an hour ends in it), 30 minutes elsewhere."""
    changes = change_times()
    windows = [(c - FINE, c + timedelta(minutes=70)) for c in changes] + FINE_WINDOWS
    result = []
    t = START
    while t <= END:
        result.append(t)
        fine = any(start <= t < end for start, end in windows)
        t += FINE if fine or t.minute % 30 else COARSE
    return result


def sun_factor(t: datetime) -> float:
    hours = t.hour + t.minute / 60
    return max(0.0, math.sin(math.pi * (hours - 5) / 14)) if 5 <= hours <= 19 else 0.0


def irradiance(t: datetime) -> float:
    cloud = 0.2 if (t - START).days in CLOUDY_DAYS else 1.0
    return round(950 * sun_factor(t) * cloud, 1)


def sold_w(plant: PlantSpec, t: datetime) -> int:
    gateway_id, start, end = NO_OUTPUT
    if plant.gateway_id == gateway_id and start <= t < end:
        return 0
    return int(plant.capacity_kw * 1000 * 0.8 * irradiance(t) / 1000)


@dataclass
class Journal:
    """What the registry journaled: (kind, plant name or gateway:<id>, phase, time)."""

    rows: list[tuple[str, str, str, datetime]]

    def of_kinds(self, kinds: set[str]) -> list[tuple[str, str, str, datetime]]:
        return [row for row in self.rows if row[0] in kinds]


@dataclass
class WeekRun:
    workdir: Path
    broker: OwnBroker
    registry_url: str
    store_url: str
    codes: dict[str, str]  # plant name -> service code
    env: dict[str, str]
    restarts: int = 0
    steps: int = 0
    seconds: float = 0.0
    logs: list[str] = field(default_factory=list)

    def journal(self) -> Journal:
        registry = Registry(self.registry_url)
        try:
            names = {code: name for name, code in self.codes.items()}
            rows = []
            for h in registry.happenings_after(0, limit=100_000):
                subject = names.get(h.event.service_code or "", f"gateway:{h.event.gateway_id}")
                rows.append((h.event.kind, subject, h.phase, h.at))
            return Journal(rows)
        finally:
            registry.close()


class _Metrics:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    def read(self) -> dict[str, float]:
        with urllib.request.urlopen(self.url, timeout=5) as answer:
            text = answer.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line:
                continue
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
        return values

    def messages(self) -> float:
        values = self.read()
        return sum(v for k, v in values.items() if k.startswith("pms_alerts_messages_total{"))

    def evaluated_until(self) -> float:
        return self.read().get("pms_alerts_evaluated_until_seconds", 0.0)


def _poll(condition: Callable[[], bool], timeout: float, what: str, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; alerts log:\n{log()[-4000:]}")


class Week:
    """Drives the scripted week: the broker, the store, the clock file and the alerts process."""

    def __init__(self, run: WeekRun, start_process: Callable[..., PmsProcess]) -> None:
        self.run = run
        self.start_process = start_process
        self.clock_file = run.workdir / "clock"
        self.store = open_store(run.store_url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"week-{uuid.uuid4().hex[:8]}")
        self.client.connect("127.0.0.1", run.broker.port)
        self.client.loop_start()
        self.sent = 0  # messages the current alerts process should have handled
        self.online: dict[str, bool] = {}
        self.registers: dict[str, float] = {p.gateway_id: 1000.0 for p in PLANTS}
        self.held: dict[str, list[EnergyReading]] = {}  # slots a gateway read while offline, sent once back
        self.metrics = _Metrics(int(run.env["PMS_METRICS_PORT"]))
        self.process: PmsProcess | None = None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.store.close()

    def set_clock(self, t: datetime) -> None:
        temporary = self.clock_file.with_suffix(".new")
        temporary.write_text(t.isoformat())
        temporary.replace(self.clock_file)  # atomic: the service never reads half a time

    def _log(self) -> str:
        return self.process.log() if self.process is not None else ""

    def start_alerts(self, t: datetime) -> None:
        self.process = self.start_process(["alerts"], self.run.env, name="alerts")
        self.sent = len([g for g in GATEWAYS if g in self.online])  # the retained statuses
        _poll(lambda: self.metrics.messages() >= self.sent, 60, "alerts to read the retained statuses", self._log)
        _poll(lambda: self.metrics.evaluated_until() >= t.timestamp(), 30, f"the evaluation of {t}", self._log)

    def stop_alerts(self) -> None:
        assert self.process is not None
        code = self.process.stop(signal.SIGTERM)
        assert code == 0, self._log()[-4000:]
        self.run.logs.append(self._log())
        self.process = None

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        self.sent += 1

    def heartbeat(self, gateway_id: str, t: datetime) -> Heartbeat:
        skew_gateway, skew_from, skew_until, skew_s = CLOCK_SKEW
        skewed = gateway_id == skew_gateway and skew_from <= t < skew_until
        scale_gateway, scale_from, scale_until, problem = SCALE_REFUSED
        conflict_gateway, conflict_at, conflict = HISTORY_CONFLICT
        backfill = None
        if gateway_id == conflict_gateway and t >= conflict_at:
            backfill = BackfillStatus(conflicts_total=1, last_conflict=conflict)
        return Heartbeat(
            gateway_id=gateway_id, at=t, uptime_s=(t - START).total_seconds(), firmware="1.0.0",
            module_family="sim", read_errors_total=0, outbox_depth=0, power_interval_s=300,
            heartbeat_interval_s=HEARTBEAT_INTERVAL_S,
            meter_clock_skew_s=skew_s if skewed else 0.4,
            meter_clock_skewed_since=skew_from if skewed else None,
            meter_scale_problem=problem if gateway_id == scale_gateway and scale_from <= t < scale_until else None,
            backfill=backfill)

    def announce(self, t: datetime) -> None:
        """The MQTT side of time t: status changes (retained, like the broker's last will) and heartbeats."""
        for gateway_id in GATEWAYS:
            now_online = not offline(gateway_id, t)
            if self.online.get(gateway_id) != now_online:
                status = GatewayStatus(gateway_id=gateway_id, state="online" if now_online else "offline", at=t,
                                       reason=None if now_online else "connection lost")
                self.publish(f"pms/v1/gw/{gateway_id}/status", status.to_json(), retain=True)
                self.online[gateway_id] = now_online
            if now_online:
                self.publish(f"pms/v1/gw/{gateway_id}/heartbeat", self.heartbeat(gateway_id, t).to_json())

    def store_until(self, previous: datetime | None, t: datetime) -> None:
        """What ingest would have stored by t: power every 5 minutes and the registers of each slot
        while the gateway was online (a gateway back online backfills its slots from the meter's
        history), and the weather of each slot."""
        sample = t if previous is None else previous + FINE
        batches: list[GatewayReadings] = []
        weather: list[Weather] = []
        while sample <= t:
            for plant in PLANTS:
                power = sold_w(plant, sample)
                self.registers[plant.gateway_id] += power * 5 / 60 / 1000  # the meter counts, online or not
                slot_end = sample.minute % 30 == 0
                registers = [EnergyReading(slot_end=sample, forward_kwh=100.0,
                                           reverse_kwh=round(self.registers[plant.gateway_id], 4))] if slot_end else []
                if not offline(plant.gateway_id, sample):
                    batches.append(GatewayReadings(plant.gateway_id,
                                                   power=[PowerReading(measured_at=sample, power_w=-power)],
                                                   energy=registers))
                else:
                    self.held.setdefault(plant.gateway_id, []).extend(registers)
                if slot_end:
                    weather.append(Weather(service_code=self.run.codes[plant.name], observed_at=sample,
                                           ghi_w_m2=irradiance(sample), gti_w_m2=irradiance(sample),
                                           source="open-meteo"))
            sample += FINE
        for gateway_id, held in list(self.held.items()):
            if not offline(gateway_id, t):
                batches.append(GatewayReadings(gateway_id, energy=[r.model_copy(update={"backfilled": True})
                                                                   for r in held]))
                del self.held[gateway_id]
        if batches:
            self.store.write_many(batches)
        if weather:
            self.store.write_weather(weather)

    def play(self) -> None:
        started = time.monotonic()
        times = steps()
        self.set_clock(START - FINE)
        for gateway_id in GATEWAYS:  # the retained statuses alerts finds when it starts
            status = GatewayStatus(gateway_id=gateway_id, state="online", at=START - FINE)
            self.publish(f"pms/v1/gw/{gateway_id}/status", status.to_json(), retain=True)
            self.online[gateway_id] = True
        self.start_alerts(START - FINE)
        previous: datetime | None = None
        for t in times:
            self.announce(t)
            expected = self.sent
            _poll(lambda: self.metrics.messages() >= expected, 30, f"the messages of {t}", self._log)  # noqa: B023
            self.store_until(previous, t)
            self.set_clock(t)
            _poll(lambda: self.metrics.evaluated_until() >= t.timestamp(), 30, f"the evaluation of {t}",  # noqa: B023
                  self._log)
            if t == RESTART_AFTER:
                self.stop_alerts()
                self.start_alerts(t)
                self.run.restarts += 1
            previous = t
        self.stop_alerts()
        self.run.steps = len(times)
        self.run.seconds = time.monotonic() - started


def prepare(workdir: Path, broker: OwnBroker, setup: Callable[[Registry, dict[str, str]], None] | None = None,
            extra_env: dict[str, str] | None = None) -> WeekRun:
    """The registry of the week (plants, bindings, the week's rules) and the alerts environment."""
    registry_url = f"sqlite:///{workdir}/registry.db"
    store_url = f"sqlite:///{workdir}/ts.db"
    registry = Registry(registry_url)
    try:
        registry.migrate()
        registry.ensure_customer("c1", "Solar One")
        registry.ensure_customer("c2", "Solar Two")
        codes = {}
        for i, plant in enumerate(PLANTS):
            code = registry.create_plant(customer_id="c1" if i < 3 else "c2", name=plant.name, address="somewhere",
                                         phone="0", created_at=START - timedelta(days=30), latitude=plant.latitude,
                                         longitude=plant.longitude, capacity_kw=plant.capacity_kw)
            registry.bind_gateway(plant.gateway_id, code, at=START - timedelta(days=30))
            codes[plant.name] = code
        before = START - timedelta(days=1)
        # P3: raise and clear at once, so its gateway's flapping shows the flap guard.
        registry.create_alert_rule(kind="gateway_offline", scope="plant", scope_value=codes["P3"],
                                   severity="critical", raise_for_s=0, clear_for_s=0, params={"flap_max": 4},
                                   at=before)
        # P4: the sun-aware rule.
        registry.create_alert_rule(kind="gateway_offline", scope="plant", scope_value=codes["P4"],
                                   severity="critical", raise_for_s=0, clear_for_s=0,
                                   params={"daylight_only": True}, at=before)
        if setup is not None:
            setup(registry, codes)
    finally:
        registry.close()
    env = {
        "PMS_MQTT_URL": broker.url, "PMS_MQTT_CLIENT_ID": "alerts-week", "PMS_REGISTRY_URL": registry_url,
        "PMS_TSDB_URL": store_url, "PMS_METRICS_PORT": str(free_port()),
        "PMS_ALERTS_CLOCK_FILE": str(workdir / "clock"), "PMS_TICK_S": "0.02", "PMS_EVALUATE_S": "60",
        "PMS_BILLING_CHECK_S": "3600", "PMS_ANOMALY_CHECK_S": "3600", "PMS_MISSED_HEARTBEATS": "3",
        **(extra_env or {}),
    }
    return WeekRun(workdir=workdir, broker=broker, registry_url=registry_url, store_url=store_url, codes=codes,
                   env=env)


def as_rows(rows: list[tuple[str, str, str, datetime]]) -> list[tuple[str, str, str, str]]:
    """(kind, subject, phase, ISO time): readable in an assertion's diff."""
    return [(kind, subject, phase, t.isoformat()) for kind, subject, phase, t in rows]
