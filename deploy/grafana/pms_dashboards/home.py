"""Operators' home: the management status (plants, gateways, open events, notices) and total sold energy."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table
from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
from grafana_foundation_sdk.builders.dashboard import DashboardLink
from grafana_foundation_sdk.models.dashboard import Dashboard, DashboardLinkType

from pms_dashboards.common import (
    MONTH_SO_FAR,
    NOW,
    THIS_MONTH,
    TODAY,
    Query,
    base,
    influxql,
    month_start_variable,
    sql,
)

UID = "pms-home"

# Gateways that count: not decommissioned (the registry's fleet counts leave those out too).
_IN_SERVICE = "decommissioned_at IS NULL"


def _stat(title: str, unit: str, target: Query, *, time_from: str | None = None, decimals: int = 0) -> stat.Panel:
    panel = stat.Panel().title(title).unit(unit).decimals(decimals).with_target(target).height(4).span(4)
    if unit == "kwatth":
        panel = panel.no_value("0")  # no energy sold yet today is 0 kWh
    if time_from is not None:
        panel = panel.time_from(time_from).hide_time_override(time_from in (TODAY, THIS_MONTH))
    return panel


def dashboard() -> Dashboard:
    built: DashboardBuilder = base(
        UID, "PMS / Home", time_from="now/d", refresh="1m",
        description="The fleet at a glance: management status and total sold energy (today and month in JST).",
    )
    built = (
        built
        .with_variable(month_start_variable())
        .link(DashboardLink("PMS dashboards").type(DashboardLinkType.DASHBOARDS).tags(["pms"]).as_dropdown(True))
        .with_panel(_stat("Plants in service", "none",
                          sql("SELECT count(*) AS plants FROM plants WHERE retired_at IS NULL")))
        .with_panel(_stat("Gateways online", "none", sql(
            f"SELECT count(*) AS online FROM gateways WHERE status = 'online' AND {_IN_SERVICE}")))
        .with_panel(_stat("Gateways offline", "none", sql(
            f"SELECT count(*) AS offline FROM gateways WHERE status <> 'online' AND {_IN_SERVICE} "
            "AND service_code IS NOT NULL")))
        .with_panel(_stat("Open events", "none", sql("SELECT count(*) AS open FROM events WHERE state = 'open'")))
        .with_panel(_stat(
            "Sold energy today (all plants)", "kwatth",
            influxql('SELECT sum("sold_kwh") FROM "energy_day" WHERE $timeFilter'), time_from=TODAY, decimals=1,
        ))
        .with_panel(_stat(
            "Sold energy this month (all plants)", "kwatth",
            influxql(f'SELECT sum("sold_kwh") FROM "energy_month" WHERE $timeFilter AND {MONTH_SO_FAR}'),
            time_from=THIS_MONTH,
            decimals=1,
        ))
        .with_panel(_stat(
            "Sold power now (all plants)", "watt",
            influxql('SELECT sum("sold_w") FROM (SELECT last("sold_power_w") AS "sold_w" FROM "power" '
                     'WHERE $timeFilter GROUP BY "gateway_id")'),
            time_from=NOW,
        ))
        .with_panel(
            table.Panel().title("Notices in force").height(8).span(12)
            .with_target(sql(
                "SELECT kind, title, starts_at, ends_at FROM notices "
                "WHERE (starts_at IS NULL OR starts_at <= $__timeTo()) "
                "AND (ends_at IS NULL OR ends_at > $__timeTo()) ORDER BY notice_id DESC LIMIT 20"
            ))
        )
        .with_panel(
            table.Panel().title("Open events (latest 50)").height(8).span(12)
            .with_target(sql(
                "SELECT opened_at, kind, service_code, gateway_id, message FROM events "
                "WHERE state = 'open' ORDER BY opened_at DESC LIMIT 50"
            ))
        )
    )
    return built.build()
