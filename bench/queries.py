"""Query latency of the API's views on a year of data: p50/p95 per query, per store.

    .venv/bin/python bench/queries.py [--plants 100] [--days 365] [--stores sqlite[,influxdb]]

Loads one year (the `--days` ending today, JST) of 60 s power and 30-minute energy registers for
`--plants` plants through the store's own write path (the rollups are built as ingest builds them),
then times, per store:
- each store query of a plant's day, month and year views (`power_series`, `energy_series` for
  30min/hour/day/month, `daily_peaks`, `weather_series`), and of the cross-plant list
  (`latest_power` + `sold_kwh_between` for all plants) and the home total (`total_sold_kwh`);
- the same views through the API (`pms_api.app.create_app`, Flask test client, JSON): a plant's day
  (power + 30-minute energy), month (daily energy + peaks) and year (monthly energy);
- the API's plants list for `--list-plants` (1,000) plants, each with a gateway measured today.

The loaded SQLite file is kept (`--data-dir`, default var/bench) and reused when its parameters
match, since a year for 100 plants is 52 million power rows. Targets: p95 < 50 ms for a
plant's day, month and year views on SQLite; p95 < 200 ms for the plants list of 1,000 plants.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _support import end_cleanly_on_sigterm  # noqa: E402

from pms_common import timeutil  # noqa: E402
from pms_common.messages import EnergyReading, PowerReading, Weather  # noqa: E402
from pms_store import GatewayReadings, TimeSeriesStore  # noqa: E402

JST = timeutil.JST
ADMIN_KEY = "bench-admin-key-0123456789"


def gateway_id(p: int) -> str:
    return f"qgw-{p:05d}"


def solar_w(capacity_w: float, moment: datetime, rng: random.Random) -> int:
    hour = moment.hour + moment.minute / 60
    if not 6 <= hour <= 18:
        return 0
    clouds = 0.6 + 0.4 * rng.random()
    return int(capacity_w * math.sin(math.pi * (hour - 6) / 12) * clouds)


def day_of_readings(p: int, day: date, registers: list[float], until: datetime | None = None) -> GatewayReadings:
    """One plant's day: 1,440 power samples and 48 slot registers (built without validation)."""
    rng = random.Random(p * 100_000 + day.toordinal())
    start = timeutil.day_start(day)
    capacity_w = 5_000 + 100 * (p % 50)
    power: list[PowerReading] = []
    energy: list[EnergyReading] = []
    sold_in_slot = 0.0
    for minute in range(1, 1441):
        moment = start + timedelta(minutes=minute)
        if until is not None and moment > until:
            break
        sold = solar_w(capacity_w, moment, rng)
        power.append(PowerReading.model_construct(measured_at=moment, power_w=300 - sold if sold else 300,
                                                  current_r_a=None, current_t_a=None))
        sold_in_slot += max(0, sold - 300) / 60_000
        if minute % 30 == 0:
            registers[0] = round(registers[0] + sold_in_slot, 3)
            registers[1] = round(registers[1] + 0.15, 3)
            energy.append(EnergyReading.model_construct(slot_end=moment, reverse_kwh=registers[0],
                                                        forward_kwh=registers[1], register_wrap_kwh=100_000.0,
                                                        backfilled=False))
            sold_in_slot = 0.0
    return GatewayReadings(gateway_id(p), power, energy)


def load(
    store: TimeSeriesStore, plants: int, days: int, today: date, now: datetime, log: Callable[[str], None]
) -> None:
    registers = {p: [1000.0 + p, 50.0] for p in range(plants)}
    first = today - timedelta(days=days - 1)
    started = time.perf_counter()
    written = 0
    for n in range(days):
        day = first + timedelta(days=n)
        batch = [day_of_readings(p, day, registers[p], now if day == today else None) for p in range(plants)]
        store.write_many(batch)
        written += sum(len(b.power) + len(b.energy) for b in batch)
        store.write_weather([
            Weather.model_construct(service_code=f"pss9{p:07d}", source="bench", temperature_c=20.0,
                                    observed_at=timeutil.day_start(day) + timedelta(hours=h), ghi_w_m2=100.0 * (h % 12))
            for p in range(plants) for h in range(24)
        ])
        if n % 30 == 29 or n == days - 1:
            elapsed = time.perf_counter() - started
            log(f"  loaded {n + 1}/{days} days, {written:,} readings, {written / elapsed:,.0f} readings/s")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def timed(what: str, runs: int, call: Callable[[int], Any], results: dict[str, list[float]]) -> None:
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    results[what] = samples
    p50, p95 = statistics.median(samples) * 1000, percentile(samples, 0.95) * 1000
    print(f"  {what:<58} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


def store_queries(store: TimeSeriesStore, plants: int, loaded_days: int, today: date, runs: int) -> None:
    rng = random.Random(7)
    ids = [gateway_id(p) for p in range(plants)]
    pick = [rng.randrange(plants) for _ in range(runs)]
    days = [today - timedelta(days=rng.randrange(1, max(2, loaded_days))) for _ in range(runs)]
    results: dict[str, list[float]] = {}

    def day_bounds(i: int) -> tuple[datetime, datetime]:
        start = timeutil.day_start(days[i])
        return start, start + timedelta(days=1)

    def month_bounds(i: int) -> tuple[datetime, datetime]:
        first = days[i].replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
        return timeutil.day_start(first), timeutil.day_start(after)

    def year_bounds(_i: int) -> tuple[datetime, datetime]:
        return timeutil.day_start(today - timedelta(days=364)), timeutil.day_start(today + timedelta(days=1))

    print(" store queries (one plant unless said):")
    timed("day: power_series (1,440 samples)", runs,
          lambda i: store.power_series([ids[pick[i]]], *day_bounds(i)), results)
    timed("day: energy_series 30min", runs,
          lambda i: store.energy_series([ids[pick[i]]], *day_bounds(i), "30min"), results)
    timed("day: energy_series hour", runs,
          lambda i: store.energy_series([ids[pick[i]]], *day_bounds(i), "hour"), results)
    timed("day: weather_series", runs,
          lambda i: store.weather_series(f"pss9{pick[i]:07d}", *day_bounds(i)), results)
    timed("month: energy_series day", runs,
          lambda i: store.energy_series([ids[pick[i]]], *month_bounds(i), "day"), results)
    timed("month: daily_peaks", runs,
          lambda i: store.daily_peaks([ids[pick[i]]], month_bounds(i)[0].date(),
                                      (month_bounds(i)[1] - timedelta(days=1)).date()), results)
    timed("year: energy_series month", runs,
          lambda i: store.energy_series([ids[pick[i]]], *year_bounds(i), "month"), results)
    timed("year: energy_series day (365 points)", runs,
          lambda i: store.energy_series([ids[pick[i]]], *year_bounds(i), "day"), results)
    timed("year: daily_peaks (365 points)", runs,
          lambda i: store.daily_peaks([ids[pick[i]]], today - timedelta(days=364), today), results)
    now = timeutil.now_jst()
    timed(f"list: latest_power + today's sold_kwh_between, {plants} plants", runs,
          lambda _i: (store.latest_power(ids), store.sold_kwh_between(ids, *timeutil.today_bounds(now))), results)
    timed(f"home: total_sold_kwh, {plants} plants", runs, lambda _i: store.total_sold_kwh(ids), results)


@contextmanager
def api_client(store: TimeSeriesStore, plants: int, list_plants: int, workdir: Path) -> Iterator[tuple[Any, list[str]]]:
    """A Flask test client of the real app on a fresh registry: `list_plants` plants, each with one
    gateway; the first `plants` are the loaded ones, the rest get today's readings here."""
    from pms_api.app import create_app
    from pms_api.settings import ApiSettings
    from pms_common.service import settle_heap
    from pms_registry import Registry

    registry_url = f"sqlite:///{workdir / 'registry.db'}"
    registry = Registry(registry_url)
    registry.migrate()
    registry.ensure_customer("c-bench", "Bench customer")
    now = timeutil.now_jst()
    codes = []
    for p in range(list_plants):
        code = registry.create_plant(customer_id="c-bench", name=f"Plant {p}", address=f"Tokyo {p}",
                                     phone="03-0000-0000", created_at=now, capacity_kw=5.0, tariff_yen_per_kwh=17.0)
        registry.bind_gateway(gateway_id(p), code)
        codes.append(code)
    extra = [day_of_readings(p, now.date(), [500.0, 10.0], now) for p in range(plants, list_plants)]
    if extra:
        store.write_many(extra)
    settings = ApiSettings(registry_url=registry_url, admin_api_key=ADMIN_KEY, tsdb_url="sqlite:///unused",
                           log_level="WARNING")
    app = create_app(settings, registry=registry, store=store)
    settle_heap()  # as `pms api` and `pms up` do once started
    with app.test_client() as client:
        yield client, codes


def api_queries(
    client: Any, codes: list[str], plants: int, list_plants: int, loaded_days: int, today: date, runs: int
) -> None:
    rng = random.Random(11)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    results: dict[str, list[float]] = {}

    def get(url: str) -> None:
        response = client.get(url, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"GET {url}: HTTP {response.status_code} {response.get_data(as_text=True)[:300]}")
        json.loads(response.get_data())

    pick = [codes[rng.randrange(plants)] for _ in range(runs)]
    days = [today - timedelta(days=rng.randrange(1, max(2, loaded_days))) for _ in range(runs)]
    year = (today - timedelta(days=364)).isoformat(), today.isoformat()

    def month(i: int) -> tuple[str, str]:
        first = days[i].replace(day=1)
        return first.isoformat(), ((first + timedelta(days=32)).replace(day=1) - timedelta(days=1)).isoformat()

    base = "/api/v1/plants"
    print(" API (Flask test client, JSON):")
    timed("day view: power + energy 30min", runs, lambda i: (
        get(f"{base}/{pick[i]}/power?start={days[i]}&end={days[i]}"),
        get(f"{base}/{pick[i]}/energy?interval=30min&start={days[i]}&end={days[i]}"),
    ), results)
    timed("day view: energy hour", runs,
          lambda i: get(f"{base}/{pick[i]}/energy?interval=hour&start={days[i]}&end={days[i]}"), results)
    timed("month view: energy day + peaks", runs, lambda i: (
        get(f"{base}/{pick[i]}/energy?interval=day&start={month(i)[0]}&end={month(i)[1]}"),
        get(f"{base}/{pick[i]}/peaks?start={month(i)[0]}&end={month(i)[1]}"),
    ), results)
    timed("year view: energy month", runs,
          lambda i: get(f"{base}/{pick[i]}/energy?interval=month&start={year[0]}&end={year[1]}"), results)
    timed(f"plants list, {list_plants} plants (limit=1000)", max(10, runs // 3),
          lambda _i: get(f"{base}?limit=1000"), results)


def open_sqlite(data_dir: Path, plants: int, days: int, today: date) -> tuple[TimeSeriesStore, bool]:
    from pms_store.sqlite import SqliteStore

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"queries-{plants}p-{days}d-{today.isoformat()}.db"
    fresh = not path.exists()
    if fresh:
        for old in data_dir.glob("queries-*.db*"):
            old.unlink()
    # NORMAL: a bench load need not survive a power cut; every commit still reaches the WAL.
    return SqliteStore(path, synchronous="NORMAL"), fresh


def main() -> None:
    end_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plants", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--list-plants", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=60, help="timed runs per query")
    parser.add_argument("--stores", default="sqlite")
    parser.add_argument("--data-dir", type=Path, default=REPO / "var" / "bench")
    args = parser.parse_args()
    now = timeutil.now_jst()
    today = now.date()
    print(f"{args.plants} plants x {args.days} days of 60 s power and 30-minute energy, ending {today} (JST)")
    for name in [s.strip() for s in args.stores.split(",") if s.strip()]:
        with tempfile.TemporaryDirectory(prefix="pms-bench-q-") as tmp:
            workdir = Path(tmp)
            if name == "sqlite":
                store, fresh = open_sqlite(args.data_dir, args.plants, args.days, today)
                server = None
            elif name == "influxdb":
                from bench.ingest import influxd
                from pms_store.influx import InfluxStore

                workdir.chmod(0o755)
                server = influxd(workdir)
                address = server.__enter__()
                store, fresh = InfluxStore.from_url(f"influxdb://{address}/pms_bench_q", timeout_s=120), True
            else:
                raise SystemExit(f"unknown store {name!r}")
            try:
                print(f"{name}:")
                if fresh:
                    load(store, args.plants, args.days, today, now, print)
                else:
                    print(f"  reusing the data loaded before in {args.data_dir}")
                store_queries(store, args.plants, args.days, today, args.runs)
                with api_client(store, args.plants, args.list_plants, workdir) as (client, codes):
                    api_queries(client, codes, args.plants, args.list_plants, args.days, today, args.runs)
            finally:
                store.close()
                if server is not None:
                    server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
