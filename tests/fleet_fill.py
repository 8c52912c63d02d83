"""A large fleet, fast: thousands of plants with a gateway each, written with SQLAlchemy Core executemany
(registering them one by one through `Registry.create_plant` takes minutes at 10,000), and a day of
readings for some of them through the store's own batched write path.

Shared by the cross-plant list's browser test and bench/plant_list.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import insert, update

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from pms_registry import Registry
from pms_registry import schema as t
from pms_store import GatewayReadings, TimeSeriesStore

CITIES = [("東京", "東京都千代田区"), ("大阪", "大阪府大阪市北区"), ("名古屋", "愛知県名古屋市中区"),
          ("札幌", "北海道札幌市中央区"), ("福岡", "福岡県福岡市博多区"), ("仙台", "宮城県仙台市青葉区"),
          ("広島", "広島県広島市中区"), ("那覇", "沖縄県那覇市")]
TAGS = ["kanto", "kansai", "hokkaido", "kyushu"]


def gateway_of(n: int) -> str:
    return f"gw-fleet-{n:05d}"


def fill_registry(registry: Registry, plants: int, now: datetime, *, customers: int = 20,
                  offline_every: int = 50) -> list[str]:
    """`plants` plants of `customers` customers (C0001...), plant n with gateway gw-fleet-n bound for a
    month (every `offline_every`-th gateway offline, the others online) and every 10th tagged by region.
    Names and addresses are Japanese; returns the service codes, plant 0 first."""
    with registry.engine.begin() as conn:
        first = conn.execute(t.service_code_counter.select()).mappings().one()["last_issued"] + 1
        codes = [f"pss{first + n:08d}" for n in range(plants)]
        conn.execute(update(t.service_code_counter).values(last_issued=first + plants - 1))
        conn.execute(insert(t.customers), [{"customer_id": f"C{c:04d}", "name": f"顧客{c}"}
                                           for c in range(customers)])
        rows = []
        for n, code in enumerate(codes):
            city, address = CITIES[n % len(CITIES)]
            rows.append({"service_code": code, "customer_id": f"C{n % customers:04d}",
                         "name": f"{city}ソーラー第{n}発電所", "address": f"{address}{n % 97 + 1}-{n % 13 + 1}",
                         "phone": f"0{n % 9 + 1}-{n % 10000:04d}-{(n * 7) % 10000:04d}", "latitude": None,
                         "longitude": None, "capacity_kw": 9.9, "tariff_yen_per_kwh": 16.0, "created_at": now})
        conn.execute(insert(t.plants), rows)
        conn.execute(insert(t.gateways), [
            {"gateway_id": gateway_of(n), "service_code": code,
             "status": "offline" if n % offline_every == offline_every - 1 else "online", "status_changed_at": now,
             "last_seen_at": now, "power_interval_s": 60.0}
            for n, code in enumerate(codes)])
        conn.execute(insert(t.gateway_bindings), [
            {"gateway_id": gateway_of(n), "service_code": code, "bound_from": now - timedelta(days=30)}
            for n, code in enumerate(codes)])
        conn.execute(insert(t.gateway_tags), [{"gateway_id": gateway_of(n), "tag": TAGS[(n // 10) % len(TAGS)]}
                                              for n in range(0, plants, 10)])
    return codes


def sold_w_of(n: int, moment: datetime) -> int:
    """Plant n's sold power at a moment: an arch over the day, scaled per plant. Not physical (it sells
    at night too), so that a sort by sold power has something to order whenever the test runs."""
    hour = moment.astimezone(timeutil.JST).hour + moment.minute / 60
    arch = 1 - abs(hour - 12) / 12
    return int((1_000 + 37 * (n % 100) + n % 7) * (0.2 + 0.8 * arch))


def day_of_readings(n: int, now: datetime, *, power_every_min: int = 5) -> GatewayReadings:
    """Plant n's gateway today until now: a power sample every `power_every_min` minutes (the last one
    10 s ago, so the plant is measured now) and the energy registers of each 30-minute slot."""
    start, _ = timeutil.today_bounds(now)
    power = []
    moment = start + timedelta(minutes=power_every_min)
    while moment < now - timedelta(seconds=10):
        power.append(PowerReading.model_construct(measured_at=moment, power_w=-sold_w_of(n, moment),
                                                  current_r_a=None, current_t_a=None))
        moment += timedelta(minutes=power_every_min)
    last = now - timedelta(seconds=10)
    power.append(PowerReading.model_construct(measured_at=last, power_w=-sold_w_of(n, last) - 1,
                                              current_r_a=None, current_t_a=None))
    energy = []
    register = 1_000.0 + n
    slot_end = start
    while slot_end <= now:
        register = round(register + sold_w_of(n, slot_end) / 2_000, 3)  # mean W over half an hour, in kWh
        energy.append(EnergyReading.model_construct(slot_end=slot_end, reverse_kwh=register, forward_kwh=50.0,
                                                    register_wrap_kwh=100_000.0, backfilled=False))
        slot_end += timedelta(minutes=30)
    return GatewayReadings(gateway_of(n), power, energy)


def fill_store(store: TimeSeriesStore, plant_numbers: Sequence[int], now: datetime, *, power_every_min: int = 5,
               batch: int = 500) -> int:
    """Today's readings of these plants' gateways; returns how many readings were written."""
    written = 0
    for at in range(0, len(plant_numbers), batch):
        readings = [day_of_readings(n, now, power_every_min=power_every_min) for n in plant_numbers[at:at + batch]]
        store.write_many(readings)
        written += sum(len(r.power) + len(r.energy) for r in readings)
    return written
