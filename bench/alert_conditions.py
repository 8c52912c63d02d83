"""The data conditions' cost per alerts tick over a fleet (issue 13): meter_unreachable,
no_generation, yield_below_expected, data_gap and update_failed against a real SQLite registry and
store holding 8 days of 30-minute slots, a recent power reading and the current weather per plant.

    .venv/bin/python bench/alert_conditions.py [--plants 1000] [--ticks 5]

Prints each condition's time per tick: the first (cold) tick, the ticks until yield_below_expected
has computed every plant (its model runs ~35 ms a plant-day, spread over ticks by its budget), and
warm ticks after that. Not a test: numbers depend on the machine and its load.

Measured (1000 plants, 8 days of slots, SQLite, 2 cores shared with other jobs at load ~7, when the
model itself cost 150-180 ms a plant-day against 36 ms idle; ticks 10 s apart):
- meter_unreachable 0.02-0.6 s a tick (median warm 0.06 s): one latest_power query;
- no_generation 0.1-0.7 s (median 0.11 s): the same query, and the weather re-read per plant every 5 min;
- data_gap 0.3-1.0 s when it evaluates (every 5 min), 0.01 s otherwise;
- yield_below_expected: after a start, ~2 s a tick (its budget) for ~100 ticks until every plant has
  its verdict (~0.2 s a plant: the model of yesterday, and of the days before only for the 1 %
  below), then 0.08 s a tick;
- update_failed < 0.01 s.
The faults planted (2 % selling nothing in the sun, 1 % shaded to a third, 1 % with a two-hour gap)
are exactly what holds: no_generation 20, yield_below_expected 10, data_gap 10, meter_unreachable 0.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import warnings
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

from _support import end_cleanly_on_sigterm

from pms_alerts.conditions import FleetFacts, PlantContext
from pms_alerts.evaluators import conditions
from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
from pms_registry import Registry
from pms_registry.alert_defaults import DEFAULT_RULES
from pms_registry.records import AlertRule
from pms_store import GatewayReadings
from pms_store.sqlite import SqliteStore

NOW = datetime(2026, 7, 10, 12, 5, tzinfo=timeutil.JST)
DAYS = 8


def sold_kwh(slot_end: datetime) -> float:
    """A clear July day of a 10 kW plant, roughly: a sine from 05:00 to 19:00 JST peaking at 3.5 kWh a slot."""
    hours = (slot_end - timeutil.SLOT / 2).astimezone(timeutil.JST)
    h = hours.hour + hours.minute / 60
    return 3.5 * math.sin(math.pi * (h - 5) / 14) if 5 < h < 19 else 0.0


def power(store: SqliteStore, plants: int, now: datetime) -> None:
    """A reading a gateway, taken just before `now`: 2 % of the plants sell nothing."""
    store.write_many([GatewayReadings(f"gw-{n:05d}", [PowerReading(measured_at=now - timedelta(seconds=5 + n % 20),
                                                                   power_w=0 if n % 50 == 3 else -3000)], ())
                      for n in range(plants)])


def build(root: Path, plants: int) -> tuple[Registry, SqliteStore, list[PlantContext]]:
    registry = Registry(f"sqlite:///{root}/registry.db")
    registry.migrate()
    store = SqliteStore(root / "ts.db")
    registry.ensure_customer("c1", "Customer 1")
    created = NOW - timedelta(days=30)
    began = time.perf_counter()
    for n in range(plants):
        code = registry.create_plant(customer_id="c1", name=f"p{n}", address="a", phone="0", created_at=created,
                                     latitude=35.0 + (n % 100) * 0.01, longitude=139.0, capacity_kw=10.0)
        registry.bind_gateway(f"gw-{n:05d}", code, at=created)
    print(f"registry: {plants} plants in {time.perf_counter() - began:.1f} s")
    start = timeutil.slot_end_at_or_before(NOW - timedelta(days=DAYS))
    slots = int((timeutil.slot_end_at_or_before(NOW) - start) / timeutil.SLOT) + 1
    began = time.perf_counter()
    batch = []
    for n in range(plants):
        gateway_id = f"gw-{n:05d}"
        gap = n % 100 == 7  # 1 % of the gateways miss two hours three days ago
        shaded = n % 100 == 13  # 1 % sell a third of what the others do
        register, energy = 1000.0, []
        for i in range(slots):
            slot_end = start + timeutil.SLOT * i
            register += sold_kwh(slot_end) * (1 / 3 if shaded else 1.0)
            if not (gap and timedelta(days=3) <= NOW - slot_end < timedelta(days=3, hours=2)):
                energy.append(EnergyReading(slot_end=slot_end, forward_kwh=50.0, reverse_kwh=round(register, 4),
                                            register_wrap_kwh=100_000.0))
        batch.append(GatewayReadings(gateway_id, (), energy))
        if len(batch) == 50:
            store.write_many(batch)
            batch = []
    if batch:
        store.write_many(batch)
    contexts = [PlantContext(service_code=p.service_code, customer_id=p.customer_id, gateway_ids=p.gateway_ids,
                             latitude=p.latitude, longitude=p.longitude, capacity_kw=p.capacity_kw, tags=frozenset(),
                             plant=p) for p in registry.list_plants()]
    slot_end = timeutil.slot_end_at_or_before(NOW) + timeutil.SLOT
    store.write_weather([Weather(service_code=c.service_code, observed_at=slot_end - timeutil.SLOT * k,
                                 ghi_w_m2=700.0, source="open-meteo") for c in contexts for k in range(3)])
    print(f"store: {plants} gateways x {slots} slots, power and weather in {time.perf_counter() - began:.1f} s")
    return registry, store, contexts


def rule(kind: str) -> AlertRule:
    severity, raise_for, clear_for, params = DEFAULT_RULES[kind]
    return AlertRule(rule_id=1, kind=kind, scope="global", scope_value=None, enabled=True, severity=severity,  # type: ignore[arg-type]
                     raise_for_s=raise_for, clear_for_s=clear_for, params=dict(params), updated_at=NOW,
                     updated_by=None)


def main() -> None:
    end_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plants", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=5, help="warm ticks measured after the caches are full")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as root:
        registry, store, contexts = build(Path(root), args.plants)
        facts = FleetFacts(online={c.gateway_ids[0]: True for c in contexts}, heartbeats={}, update_reports={})
        conds = conditions(registry, store)
        rules = {cond.kind: {c.service_code: rule(cond.kind) for c in contexts} for cond in conds}
        timings: dict[str, list[float]] = defaultdict(list)
        raised: dict[str, int] = {}
        tick, now, warm = 0, NOW, 0
        while warm < args.ticks:
            power(store, args.plants, now)
            complete = True
            for cond in conds:
                began = time.perf_counter()
                observed = cond.observe_all(contexts, rules[cond.kind], now, facts)
                timings[cond.kind].append(time.perf_counter() - began)
                raised[cond.kind] = sum(1 for o in observed.values() if o.holds)
                if cond.kind == "yield_below_expected" and len(observed) < len(contexts):
                    complete = False
            total = sum(timings[k][-1] for k in timings)
            if tick == 0 or not complete or warm == 0:
                print(f"tick {tick:3d}: {total:6.2f} s  " + "  ".join(f"{k} {timings[k][-1]:.2f}" for k in timings))
            warm += 1 if complete else 0
            tick += 1
            now += timedelta(seconds=10)
        print(f"warm ticks (last {args.ticks}, s, median): " + "  ".join(
            f"{k} {sorted(timings[k][-args.ticks:])[args.ticks // 2]:.3f}" for k in timings))
        print("plants whose condition holds: " + "  ".join(f"{k} {n}" for k, n in raised.items()))
        store.close()


if __name__ == "__main__":
    main()
