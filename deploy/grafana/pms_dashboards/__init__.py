"""PMS's Grafana dashboards as code (grafana-foundation-sdk builders); `deploy/grafana/generate.py`
writes them to `deploy/grafana/dashboards/*.json`, the files Grafana's file provisioning loads.

One module per dashboard, each with `dashboard() -> Dashboard`; `common` holds the datasources (uids
of deploy/grafana/provisioning/datasources), the query objects the SDK lacks (InfluxQL, SQL) and the
"today"/"this month" time overrides, which Grafana rounds in the dashboard's time zone (Asia/Tokyo).
"""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard, DataSourceRef, Panel

from pms_dashboards import fleet, home, ops, plant, plants
from pms_dashboards.common import INFLUX, MIXED, PROMETHEUS, REGISTRY, InfluxQLQuery, PromQLQuery, SQLQuery

ALL = (home, plants, plant, fleet, ops)


def dashboards() -> dict[str, Dashboard]:
    """Every dashboard by its file name (its uid + .json)."""
    built = [_finished(module.dashboard()) for module in ALL]
    return {f"{d.uid}.json": d for d in built}


def _finished(board: Dashboard) -> Dashboard:
    """Stable panel ids (links and Grafana's panel state use them), and each panel's datasource
    named: the one its targets share, or Grafana's mixed datasource when they differ."""
    for number, panel in enumerate(board.panels or [], start=1):
        if not isinstance(panel, Panel):
            continue
        panel.id_val = number
        if panel.datasource is None:
            refs = {(ref.type_val, ref.uid) for ref in map(_datasource_of, panel.targets or [])}
            panel.datasource = _datasource_of(panel.targets[0]) if len(refs) == 1 and panel.targets else MIXED
    return board


def _datasource_of(target: object) -> DataSourceRef:
    if isinstance(target, InfluxQLQuery):
        return INFLUX
    if isinstance(target, SQLQuery):
        return REGISTRY
    if isinstance(target, PromQLQuery):
        return PROMETHEUS
    raise TypeError(f"a target of an unknown kind: {type(target).__name__}")
