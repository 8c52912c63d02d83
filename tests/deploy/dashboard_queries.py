"""Every query of every committed dashboard (deploy/grafana/dashboards/*.json), for the tests here and
for the rehearsal, which runs `promql_queries()` against its real Prometheus."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel: `text` is the InfluxQL, SQL or PromQL as the JSON has it."""

    dashboard_uid: str
    panel_title: str
    ref_id: str
    datasource_type: str
    datasource_uid: str
    text: str
    dashboard: Mapping[str, Any]
    panel: Mapping[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dashboard_uid, self.panel_title, self.ref_id)


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def panel_queries() -> list[PanelQuery]:
    found = []
    for board in dashboards().values():
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                ds = target.get("datasource") or panel["datasource"]
                text = target.get("query") or target.get("rawSql") or target.get("expr") or ""
                found.append(PanelQuery(board["uid"], panel["title"], target["refId"], ds["type"], ds["uid"], text,
                                        board, panel))
    return found


def variable_queries() -> list[tuple[str, dict[str, Any]]]:
    """(dashboard uid, variable) for every query variable."""
    return [(board["uid"], v) for board in dashboards().values() for v in board.get("templating", {}).get("list", [])
            if v.get("type") == "query"]


def promql_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expression) of every PromQL target, with Grafana's built-ins
    ($__rate_interval, $__interval, $__range) unexpanded: expand them with
    tests/deploy/grafana_expand.expand_promql. No dashboard variable appears in PromQL."""
    return [(q.dashboard_uid, q.panel_title, q.text) for q in panel_queries() if q.datasource_type == "prometheus"]
