"""The Grafana dashboards, tested for real without Grafana (issue 16, acceptance 2).

- The committed JSON is exactly what deploy/grafana/generate.py writes from pms_dashboards/.
- Every datasource a panel, target or variable names is provisioned; no `__inputs`/`${DS_…}`
  placeholders (file provisioning does not resolve them).
- Every InfluxQL target, expanded as Grafana expands it (tests/deploy/grafana_expand.py), runs on a
  real influxd loaded through the store's own writer (dashboard_fixture.py) and returns the figures
  below; every SQL target runs on a real PostgreSQL registry; the template variables are resolved by
  running their own queries, as Grafana does; every PromQL target is evaluated by `promtool test
  rules` on fixture series. A target without an expected value fails the completeness test.
"""

from __future__ import annotations

import decimal
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from pms_common.timeutil import JST
from pms_store.influx import InfluxStore
from tests.deploy import dashboard_fixture as fx
from tests.deploy.dashboard_queries import DASHBOARDS, PanelQuery, dashboards, panel_queries, variable_queries
from tests.deploy.grafana_expand import (
    Variable,
    expand_influxql,
    expand_promql,
    expand_sql,
    interpolate,
    interval_ms,
    panel_range,
    unexpanded,
)
from tests.postgres import scratch_database
from tests.store.conftest import influxdb_url  # noqa: F401  (the session's real influxd)

GRAFANA = DASHBOARDS.parent
PROVISIONED = GRAFANA / "provisioning" / "datasources"
BUILT_IN_DATASOURCES = {"-- Mixed --"}  # Grafana's own: a panel whose targets name theirs
MIN_INTERVAL_S = {"influxdb": 60, "prometheus": 15}  # the datasources' timeInterval

A1 = "gw-a1"

# What each target returns on the fixture, rows as normalized by `rows_of`: tag values, then the
# time as "MM-DD HH:MM" JST when the query groups by time, then the values.
INFLUXQL_EXPECTED: dict[tuple[str, str, str], list[tuple[Any, ...]]] = {
    ("pms-plant", "Sold power now", "A"): [(2400,)],  # gw-a1's 14:58 sample; gw-m1's 800 W are Bay Roof's
    ("pms-plant", "Sold energy today", "A"): [(36.0,)],  # JST day so far: not gw-m1's 8 kWh (moved away)
    ("pms-plant", "Bought energy today", "A"): [(1.0,)],
    ("pms-plant", "Peak sold power today", "A"): [(4500,)],
    ("pms-plant", "Sold energy this month", "A"): [(48.0,)],  # 12 on 5 June + 36 today
    ("pms-plant", "Sold power (realtime)", "A"): [
        (A1, "06-20 12:00", 4500.0), (A1, "06-20 14:50", 3000.0), (A1, "06-20 14:55", 1200.0),  # mean(0, 2400)
    ],
    ("pms-plant", "Solar irradiance (GHI) and temperature", "A"): [
        ("06-20 12:00", 850.0, 27.5), ("06-20 14:30", 600.0, 28.0),
    ],
    ("pms-plant", "Sold energy per hour", "A"): [(f"06-20 {h:02d}:00", 6.0) for h in range(9, 15)],
    ("pms-plant", "Sold energy per day (31 days)", "A"): [("06-05 00:00", 12.0), ("06-20 00:00", 36.0)],
    # gw-a0's 20 kWh of May are missing: $gateway holds the gateways bound during the dashboard's
    # range (2 days); docs/dashboards.md says so.
    ("pms-plant", "Sold energy per month (12 months)", "A"): [("06-01 00:00", 48.0)],
    ("pms-plant", "Peak sold power per day (31 days)", "A"): [("06-05 00:00", 3900), ("06-20 00:00", 4500)],
    ("pms-plant", "Expected vs sold energy per hour", "A"): [(f"06-20 {h:02d}:00", 6.0) for h in range(9, 15)],
    # The slot ending 00:00 today closes 19 June: stamped at its start, it sums into 23:00 and 19 June.
    ("pms-plant", "Expected vs sold energy per hour", "B"): [
        ("06-19 23:00", 1.0), *((f"06-20 {h:02d}:00", 7.0) for h in range(9, 15))],
    ("pms-plant", "Expected vs sold energy per day (31 days)", "A"): [("06-05 00:00", 12.0), ("06-20 00:00", 36.0)],
    ("pms-plant", "Expected vs sold energy per day (31 days)", "B"): [("06-19 00:00", 1.0), ("06-20 00:00", 42.0)],
    ("pms-plant", "Currents (E8)", "A"): [(A1, "06-20 12:00", 20.0, 18.5)],
    ("pms-home", "Sold energy today (all plants)", "A"): [(58.0,)],  # 36 + 14 + 8
    ("pms-home", "Sold energy this month (all plants)", "A"): [(70.0,)],  # 48 + 14 + 8
    ("pms-home", "Sold power now (all plants)", "A"): [(4400,)],  # 2400 + 1200 + 800
    ("pms-plants", "Plants", "sold"): [(A1, 36.0), ("gw-b1", 14.0), ("gw-m1", 8.0)],
}

HB = ("1.4.0", -71, 3)  # the fixture's heartbeat: firmware, RSSI, outbox depth
SQL_EXPECTED: dict[tuple[str, str, str], list[tuple[Any, ...]]] = {
    ("pms-home", "Plants in service", "A"): [(3,)],
    ("pms-home", "Gateways online", "A"): [(3,)],  # gw-a1, gw-m1, gw-u1 (unbound but online)
    ("pms-home", "Gateways offline", "A"): [(1,)],  # gw-b1; gw-a0 is decommissioned
    ("pms-home", "Open events", "A"): [(1,)],
    ("pms-home", "Notices in force", "A"): [("maintenance", "Broker maintenance", "06-19 00:00", "06-21 00:00")],
    ("pms-home", "Open events (latest 50)", "A"): [
        ("06-20 13:05", "gateway_offline", fx.BAY, "gw-b1", "gw-b1 is offline"),
    ],
    ("pms-plants", "Plants", "plants"): [
        (fx.SUNNY, "Sunny Hill", "c1", "Sunny Hill, Chiba", 49.5, A1, "online", "06-20 15:00"),
        (fx.BAY, "Bay Roof", "c1", "Bay Roof, Chiba", 49.5, "gw-b1", "offline", "06-20 13:00"),
        (fx.BAY, "Bay Roof", "c1", "Bay Roof, Chiba", 49.5, "gw-m1", "online", "06-20 15:00"),
        (fx.FIELD, "New Field", "c1", "New Field, Chiba", 49.5, None, None, None),
    ],
    ("pms-plants", "Plants without a gateway", "A"): [(fx.FIELD, "New Field", "c1", "New Field, Chiba")],
    ("pms-fleet", "Gateways by state", "A"): [(3, 1, 1)],
    ("pms-fleet", "Gateways", "A"): [
        (A1, fx.SUNNY, "Sunny Hill", "online", "06-14 09:00", "06-20 15:00", *HB),
        ("gw-b1", fx.BAY, "Bay Roof", "offline", "06-20 13:00", "06-20 13:00", *HB),
        ("gw-m1", fx.BAY, "Bay Roof", "online", None, "06-20 15:00", *HB),
        ("gw-u1", None, None, "online", None, "06-20 15:00", None, None, None),
    ],
    ("pms-fleet", "State changes in range", "A"): [  # the last 7 days: not gw-a1's offline of 1 June
        ("06-20 13:00", "gw-b1", "offline", "no heartbeat for 90 s"),
        ("06-14 09:00", A1, "online", "connected"),
    ],
    ("pms-ops", "Share of bound gateways online (registry)", "A"): [(0.666667,)],  # gw-a1, gw-m1 of 3
}

# PromQL: (labels, value) at 90 minutes into the series of PROMQL_SERIES.
PROMQL_EXPECTED: dict[tuple[str, str, str], list[tuple[str, float]]] = {
    ("pms-ops", "Services up", "A"): [
        ('up{instance="api:8080", job="pms-api"}', 1), ('up{instance="ingest:9102", job="pms-ingest"}', 1),
    ],
    ("pms-ops", "Gateways online", "A"): [("{}", 80)],
    ("pms-ops", "Share of installed gateways offline", "A"): [("{}", 0.2)],  # 20 of 100 (3 never seen count nowhere)
    ("pms-ops", "Ingest counters (per second)", "A"): [
        ('{counter="deadletter"}', 0.1), ('{counter="readings"}', 1),
    ],
    ("pms-ops", "Dead letters (per second)", "A"): [('{job="pms-ingest"}', 0.1)],
    ("pms-ops", "Dead letters (last 24 h)", "A"): [("{}", 540)],
    ("pms-ops", "Gateway outbox depth (the ten deepest)", "A"): [('{gateway_id="gw-a1"}', 3),
                                                               ('{gateway_id="gw-b1"}', 7)],
    ("pms-ops", "Service counters (per second)", "A"): [
        ('{counter="api_requests", job="pms-api"}', 0.2),
        ('{counter="device_manager_heartbeats", job="pms-device-manager"}', 2),
    ],
    ("pms-ops", "Resident memory", "A"): [
        ('process_resident_memory_bytes{instance="ingest:9102", job="pms-ingest"}', 5e7),
    ],
    ("pms-ops", "CPU", "A"): [('{instance="ingest:9102", job="pms-ingest"}', 0.1)],
}

# 15 s scrapes for two hours (480 steps); the gateways online drop from 100 to 80 after an hour (20 offline).
PROMQL_SERIES = {
    'up{job="pms-ingest", instance="ingest:9102"}': "1+0x480",
    'up{job="pms-api", instance="api:8080"}': "1+0x480",
    'up{job="prometheus", instance="localhost:9090"}': "1+0x480",
    'pms_device_manager_gateways_online{job="pms-device-manager", instance="device-manager:9105"}':
        "100+0x240 80+0x239",
    'pms_device_manager_gateways{job="pms-device-manager", instance="device-manager:9105", condition="online"}':
        "100+0x240 80+0x239",
    'pms_device_manager_gateways{job="pms-device-manager", instance="device-manager:9105", condition="offline"}':
        "0+0x240 20+0x239",
    'pms_device_manager_gateways{job="pms-device-manager", instance="device-manager:9105", condition="never_seen"}':
        "3+0x480",
    'pms_ingest_readings_total{job="pms-ingest", instance="ingest:9102"}': "0+15x480",
    'pms_ingest_deadletter_total{job="pms-ingest", instance="ingest:9102"}': "0+1.5x480",
    'pms_device_manager_gateway_outbox_depth{job="pms-device-manager", gateway_id="gw-a1"}': "3+0x480",
    'pms_device_manager_gateway_outbox_depth{job="pms-device-manager", gateway_id="gw-b1"}': "7+0x480",
    'pms_device_manager_heartbeats_total{job="pms-device-manager", instance="device-manager:9105"}': "0+30x480",
    'pms_api_requests_total{job="pms-api", instance="api:8080"}': "0+3x480",
    'process_resident_memory_bytes{job="pms-ingest", instance="ingest:9102"}': "5e7+0x480",
    'process_cpu_seconds_total{job="pms-ingest", instance="ingest:9102"}': "0+1.5x480",
}


# ----------------------------------------------------------------------------- the files


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("pms_grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_dashboards_are_what_generate_writes() -> None:
    rendered = _generator().rendered()
    committed = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS.glob("*.json")}
    assert set(committed) == set(rendered), "run: python deploy/grafana/generate.py"
    for name, text in rendered.items():
        assert committed[name] == text, f"{name} differs from generate.py's output: run python deploy/grafana/generate.py"


def test_the_dashboard_code_type_checks(tmp_path: Path) -> None:
    """Strict mypy over deploy/grafana: it is no installed package, so `make typecheck` leaves it out."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path), "--no-incremental",
         str(GRAFANA / "pms_dashboards"), str(GRAFANA / "generate.py")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "MYPYPATH": str(GRAFANA)}, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_five_dashboards_have_stable_uids_and_no_placeholders() -> None:
    boards = dashboards()
    assert {b["uid"] for b in boards.values()} == {"pms-home", "pms-plants", "pms-plant", "pms-fleet", "pms-ops"}
    for name, board in boards.items():
        text = (DASHBOARDS / name).read_text(encoding="utf-8")
        assert board["uid"] == name.removesuffix(".json")
        assert "__inputs" not in board and "${DS_" not in text, f"{name}: file provisioning cannot resolve inputs"
        assert board["timezone"] == "Asia/Tokyo"
        for linked in re.findall(r'"/d/([\w-]+)/', text):
            assert linked in {b["uid"] for b in boards.values()}, f"{name} links to a missing dashboard {linked}"


def _provisioned_uids() -> dict[str, str]:
    found = {}
    for path in PROVISIONED.glob("*.yaml"):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            found[ds["uid"]] = ds["type"]
    return found


def _datasource_refs(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, dict):
        ref = node.get("datasource")
        if isinstance(ref, dict):
            yield ref
        for value in node.values():
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _datasource_refs(value)


def test_every_datasource_used_is_provisioned_with_its_type() -> None:
    provisioned = _provisioned_uids()
    assert provisioned["pms-registry"] == "grafana-postgresql-datasource"
    used = [ref for board in dashboards().values() for ref in _datasource_refs(board)]
    assert used
    for ref in used:
        if ref["uid"] in BUILT_IN_DATASOURCES:
            continue
        assert ref["uid"] in provisioned, f"datasource uid {ref['uid']!r} is not provisioned"
        assert ref["type"] == provisioned[ref["uid"]], ref


def test_every_panel_query_has_an_expected_value() -> None:
    """Completeness: a new panel (or target) fails here until its query's figures are checked."""
    found = {q.key: q.datasource_type for q in panel_queries()}
    expected = {**dict.fromkeys(INFLUXQL_EXPECTED, "influxdb"),
                **dict.fromkeys(SQL_EXPECTED, "grafana-postgresql-datasource"),
                **dict.fromkeys(PROMQL_EXPECTED, "prometheus")}
    assert found == expected
    for board in dashboards().values():
        for panel in board["panels"]:
            assert panel.get("targets"), f"{board['uid']}: {panel['title']} has no query"
            if any("$__interval" in t.get("query", "") for t in panel["targets"]):
                assert panel.get("maxDataPoints"), f"{panel['title']}: $__interval needs a fixed maxDataPoints"


def test_promql_uses_only_grafana_built_ins() -> None:
    """The rehearsal expands $__rate_interval, $__interval and $__range and nothing else."""
    for q in panel_queries():
        if q.datasource_type == "prometheus":
            rest = re.sub(r"\$__(rate_interval|interval|range)\b", "", q.text)
            assert not re.search(r"\$\{?[A-Za-z_]", rest), q.text


# ----------------------------------------------------------------------------- the fleet


@pytest.fixture(scope="module")
def registry_url() -> Iterator[str]:
    with scratch_database("pms_dash") as url:
        fx.load_registry(url)
        yield url


@pytest.fixture(scope="module")
def influx(influxdb_url: str) -> Iterator[tuple[str, str]]:  # noqa: F811
    parts = urlsplit(influxdb_url)
    database = f"pms_dash_{secrets.token_hex(4)}"
    # A generous timeout: the shared machine runs at load 20+, and a slow write must not pass for a bug.
    store = InfluxStore.from_url(f"influxdb://{parts.netloc}/{database}", timeout_s=60.0)
    fx.load_readings(store)
    store.close()
    yield f"http://{parts.netloc}", database


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(JST).strftime("%m-%d %H:%M")
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float):
        return round(value, 6)
    return value


def run_sql(url: str, query: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [tuple(_plain(v) for v in row) for row in conn.execute(query).fetchall()]  # type: ignore[arg-type]


def _variable(uid: str, name: str) -> dict[str, Any]:
    return next(v for board_uid, v in variable_queries() if board_uid == uid and v["name"] == name)


def resolve_variables(query: PanelQuery, registry: str, now: datetime) -> dict[str, Variable]:
    """The dashboard's variables as Grafana sets them, each from its own SQL on the registry, in
    order, on the dashboard's range: $plant = Sunny Hill picked from its options, a multi-value
    variable "All" of its options, any other its one value."""
    board_range = panel_range(query.dashboard, {}, now)  # variables refresh on the dashboard's range
    variables: dict[str, Variable] = {}
    for declared in query.dashboard.get("templating", {}).get("list", []):
        rows = run_sql(registry, expand_sql(interpolate(declared["query"], variables, "sql"), board_range))
        values = tuple(str(row[-1]) for row in rows)  # __value when there is a __text column
        if declared["name"] == "plant":
            values = tuple(str(value) for text, value in rows if text == f"{fx.SUNNY} Sunny Hill")
        elif not declared.get("multi"):
            values = values[:1]
        variables[declared["name"]] = Variable(declared["name"], values, multi=bool(declared.get("multi")))
    return variables


def test_the_plant_variables_offer_plants_by_code_and_name_and_select_bound_gateways(registry_url: str) -> None:
    board = dashboards()["pms-plant.json"]
    rng = panel_range(board, {}, fx.NOW)
    options = run_sql(registry_url, expand_sql(_variable("pms-plant", "plant")["query"], rng))
    assert options == [(f"{fx.SUNNY} Sunny Hill", fx.SUNNY), (f"{fx.BAY} Bay Roof", fx.BAY),
                       (f"{fx.FIELD} New Field", fx.FIELD)]  # not the retired Old Barn
    query = next(q for q in panel_queries() if q.dashboard_uid == "pms-plant")
    variables = resolve_variables(query, registry_url, fx.NOW)
    # gw-a0 left on 1 June and gw-m1 moved to Bay Roof on 10 June, both before the 2-day range.
    assert variables["gateway"].values == (A1,)
    june_first = datetime(2026, 6, 1, tzinfo=JST)
    assert variables["month_start"].values == (str(int(june_first.timestamp() * 1000)),)  # 00:00 JST on the 1st
    assert interpolate('"gateway_id" =~ /^${gateway:regex}$/', variables, "influxql") == '"gateway_id" =~ /^gw-a1$/'
    two = {"gateway": Variable("gateway", ("gw-a.1", "gw/b"), multi=True)}
    assert interpolate("/^${gateway:regex}$/", two, "influxql") == r"/^(gw-a\.1|gw\/b)$/"


def expanded(query: PanelQuery, registry: str, now: datetime = fx.NOW) -> str:
    rng = panel_range(query.dashboard, query.panel, now)
    if query.datasource_type == "influxdb":
        variables = resolve_variables(query, registry, now)
        points = int(query.panel.get("maxDataPoints") or 1000)
        text = expand_influxql(interpolate(query.text, variables, "influxql"), rng,
                               interval_ms(rng, points, MIN_INTERVAL_S["influxdb"]))
    else:
        text = expand_sql(query.text, rng)
    assert not unexpanded(text), f"left unexpanded in {text}"
    return text


def rows_of(result: Mapping[str, Any], grouped_by_time: bool) -> list[tuple[Any, ...]]:
    assert "error" not in result, result["error"]
    rows = []
    for series in result.get("series", []):
        tags = [series["tags"][k] for k in sorted(series.get("tags", {}))]
        time_at = series["columns"].index("time")
        for values in series["values"]:
            figures = [_plain(v) for i, v in enumerate(values) if i != time_at]
            if all(v is None for v in figures):
                continue
            when = [_plain(datetime.fromtimestamp(values[time_at] / 1000, JST))] if grouped_by_time else []
            rows.append((*tags, *when, *figures))
    return rows


INFLUX_QUERIES = [q for q in panel_queries() if q.datasource_type == "influxdb"]
SQL_QUERIES = [q for q in panel_queries() if q.datasource_type == "grafana-postgresql-datasource"]


@pytest.mark.integration
@pytest.mark.parametrize("query", INFLUX_QUERIES, ids=[" / ".join(q.key) for q in INFLUX_QUERIES])
def test_influxql_panel_returns_the_expected_figures(
    query: PanelQuery, influx: tuple[str, str], registry_url: str
) -> None:
    text = expanded(query, registry_url)
    assert run_influxql(influx, text) == INFLUXQL_EXPECTED[query.key], text


def run_influxql(influx: tuple[str, str], text: str) -> list[tuple[Any, ...]]:
    base_url, database = influx
    response = httpx.post(f"{base_url}/query", data={"db": database, "q": text, "epoch": "ms"}, timeout=30)
    response.raise_for_status()
    (result,) = response.json()["results"]
    return rows_of(result, grouped_by_time="GROUP BY time(" in text)


DAY_AND_MONTH = [q for q in INFLUX_QUERIES if q.panel.get("timeFrom") in ("24h", "31d")]


@pytest.mark.integration
@pytest.mark.parametrize("query", DAY_AND_MONTH, ids=[" / ".join(q.key) for q in DAY_AND_MONTH])
def test_today_and_this_month_start_at_midnight_jst(
    query: PanelQuery, influx: tuple[str, str], registry_url: str
) -> None:
    """40 minutes into a new JST day (and month), nothing is sold yet: the "today" and "this month"
    panels are empty (Grafana shows 0 kWh), where a sum over the last 24 h would show yesterday's."""
    after_midnight = datetime(2026, 6, 21, 0, 40, tzinfo=JST) if query.panel["timeFrom"] == "24h" else (
        datetime(2026, 7, 1, 0, 40, tzinfo=JST))  # "this month": the 1st
    assert run_influxql(influx, expanded(query, registry_url, after_midnight)) == []


@pytest.mark.integration
@pytest.mark.parametrize("query", SQL_QUERIES, ids=[" / ".join(q.key) for q in SQL_QUERIES])
def test_registry_panel_returns_the_expected_rows(query: PanelQuery, registry_url: str) -> None:
    assert run_sql(registry_url, expanded(query, registry_url)) == SQL_EXPECTED[query.key]


# ----------------------------------------------------------------------------- PromQL


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: install Debian's prometheus package (scripts/test-services.sh)")
    return found


def test_every_promql_panel_evaluates_to_the_expected_samples(tmp_path: Path) -> None:
    """`promtool test rules`: each expression, built-ins expanded for a 6 h dashboard ($__interval 1m),
    evaluated on the fixture series 90 minutes in."""
    queries = [q for q in panel_queries() if q.datasource_type == "prometheus"]
    tests = [{
        "expr": expand_promql(q.text, interval_s=60, range_s=6 * 3600),
        "eval_time": "90m",
        "exp_samples": [{"labels": labels, "value": value} for labels, value in PROMQL_EXPECTED[q.key]],
    } for q in queries]
    spec = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "15s",
            "input_series": [{"series": s, "values": v} for s, v in PROMQL_SERIES.items()],
            "promql_expr_test": tests,
        }],
    }
    path = tmp_path / "dashboards_test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.dumps(tests)  # every expression went in
