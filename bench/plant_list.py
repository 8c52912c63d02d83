"""Server time of the cross-plant list (GET /api/v1/plants) with 10,000 plants, per query shape and registry.

    .venv/bin/python bench/plant_list.py [--plants 10000] [--measured 10000] [--runs 40]
                                         [--registries sqlite,postgresql]

Writes today's readings (a power sample every 5 minutes, the last one 10 s ago, and each 30-minute slot's
registers) of `--measured` plants into a SQLite store, then for each registry (a SQLite file, and a
PostgreSQL database of its own on 127.0.0.1:5432, created and dropped here) registers `--plants` plants
with a gateway each (tests/fleet_fill.py) and times, through the real app (Flask test client, JSON, so
server time without a network):
- the list's shapes: first page, a search, a sort by sold W, filters (status, customer, tag), a deep page;
- the graph view's sparklines of one page (50 plants), and the home screen's refresh (/api/v1/summary);
- the fleet snapshot's rebuild (what a sort or filter by a figure needs every few seconds), and the
  same sort answered by a request that has to rebuild it (a cold snapshot).
Target: p95 < 300 ms for each list shape on both registries.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _support import end_cleanly_on_sigterm  # noqa: E402

from pms_common import timeutil  # noqa: E402
from pms_store import TimeSeriesStore  # noqa: E402
from tests.fleet_fill import fill_registry, fill_store  # noqa: E402
from tests.postgres import scratch_database  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def timed(what: str, runs: int, call: Callable[[int], Any]) -> None:
    samples = []
    for i in range(runs):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    p50, p95 = statistics.median(samples) * 1000, percentile(samples, 0.95) * 1000
    print(f"  {what:<52} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")


@contextmanager
def registry_url(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'registry.db'}"
        return
    with scratch_database("pms_bench_list") as url:
        yield url


def bench_registry(kind: str, store: TimeSeriesStore, plants: int, runs: int, workdir: Path) -> None:
    from pms_api.app import create_app
    from pms_api.settings import ApiSettings
    from pms_registry import Registry

    with registry_url(kind, workdir) as url:
        registry = Registry(url)
        registry.migrate()
        started = time.perf_counter()
        codes = fill_registry(registry, plants, timeutil.now_jst())
        print(f"{kind} registry: {plants:,} plants registered in {time.perf_counter() - started:.1f} s")
        app = create_app(ApiSettings(registry_url=url, admin_api_key=ADMIN_KEY, tsdb_url="sqlite:///unused",
                                     log_level="WARNING"), registry=registry, store=store)
        client = app.test_client()
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        rng = random.Random(5)

        def get(query: str) -> dict[str, Any]:
            response = client.get(f"/api/v1/plants{query}", headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"GET {query}: HTTP {response.status_code} {response.get_data(as_text=True)[:300]}")
            body: dict[str, Any] = response.get_json()
            return body

        get("?limit=1")  # the first request builds what Flask builds once
        searches = [f"?q=第{rng.randrange(plants)}発電所" for _ in range(runs)]
        searches[::3] = ["?q=大阪"] * len(searches[::3])  # a broad one: an eighth of the fleet matches
        pages = [codes[rng.randrange(plants - 50):][:50] for _ in range(runs)]
        timed("first page (limit 100, by service code)", runs, lambda _i: get("?limit=100"))
        timed("search (q=, substring of 5 fields)", runs, lambda i: get(searches[i] + "&limit=100"))
        timed("sort by current sold W, desc", runs, lambda _i: get("?sort=current_sold_w&order=desc&limit=100"))
        timed("sort by today's kWh, asc, page 3", runs,
              lambda _i: get("?sort=today_sold_kwh&limit=100&offset=200"))
        timed("filter status=offline", runs, lambda _i: get("?status=offline&limit=100"))
        timed("filter customer_id + sort by name", runs,
              lambda i: get(f"?customer_id=C{i % 20:04d}&sort=name&limit=100"))
        timed("filter tag=kansai", runs, lambda _i: get("?tag=kansai&limit=100"))
        timed("deep page (offset 9,900)", runs, lambda _i: get(f"?offset={max(0, plants - 100)}&limit=100"))
        timed("search + status filter + sort by sold W", runs,
              lambda _i: get("?q=東京&status=normal&sort=current_sold_w&order=desc&limit=100"))
        timed("graph view: sparklines of 50 plants", runs, lambda i: client.get(
            "/api/v1/plants/sparklines?codes=" + ",".join(pages[i]), headers=headers).get_json())
        timed("home screen refresh: /api/v1/summary (not the list's)", max(5, runs // 4),
              lambda _i: client.get("/api/v1/summary", headers=headers).get_json())
        fleet = app.config["plant_figures"].fleet  # the snapshot the app's list requests share
        timed(f"fleet snapshot rebuild ({plants:,} plants)", max(5, runs // 4), lambda _i: fleet._build())

        def cold(_i: int) -> None:
            fleet._current = None
            get("?sort=current_sold_w&order=desc&limit=100")

        timed("sort by sold W with a cold snapshot (rebuilt in it)", max(5, runs // 4), cold)
        body = get("?sort=current_sold_w&order=desc&limit=3")
        print(f"  (check: total {body['total']:,}, top sold W {[p['current_sold_w'] for p in body['items']]}, "
              f"snapshot age {body['snapshot_age_s']} s)")
        registry.close()


def main() -> None:
    end_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plants", type=int, default=10_000)
    parser.add_argument("--measured", type=int, default=None, help="plants with today's readings (default all)")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--registries", default="sqlite,postgresql")
    args = parser.parse_args()
    from pms_store.sqlite import SqliteStore

    measured = args.plants if args.measured is None else args.measured
    with tempfile.TemporaryDirectory(prefix="pms-bench-list-") as tmp:
        workdir = Path(tmp)
        store = SqliteStore(workdir / "ts.db", synchronous="NORMAL")
        started = time.perf_counter()
        written = fill_store(store, list(range(measured)), timeutil.now_jst())
        print(f"store: today's readings of {measured:,} plants ({written:,} readings) written in "
              f"{time.perf_counter() - started:.1f} s")
        try:
            for kind in [k.strip() for k in args.registries.split(",") if k.strip()]:
                bench_registry(kind, store, args.plants, args.runs, workdir)
        finally:
            store.close()


if __name__ == "__main__":
    main()
