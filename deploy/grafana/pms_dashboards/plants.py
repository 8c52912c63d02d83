"""The cross-plant list: every plant in service with its gateways' state and today's sold energy."""

from __future__ import annotations

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
from grafana_foundation_sdk.models.dashboard import Dashboard, DataTransformerConfig

from pms_dashboards.common import MIXED, TODAY, base, influxql, plant_detail_link, sql

UID = "pms-plants"


def dashboard() -> Dashboard:
    built: DashboardBuilder = base(
        UID, "PMS / Plants", time_from="now/d", refresh="30s",
        description="Every plant in service, by service code: its gateway, state, and sold energy today (JST).",
    )
    plant_rows = sql(
        "SELECT p.service_code, p.name, p.customer_id, p.address, p.capacity_kw, "
        "g.gateway_id, g.status, g.last_seen_at FROM plants p "
        "LEFT JOIN gateways g ON g.service_code = p.service_code AND g.decommissioned_at IS NULL "
        "WHERE p.retired_at IS NULL ORDER BY p.service_code, g.gateway_id",
        ref_id="plants",
    )
    sold_today = influxql(
        'SELECT sum("sold_kwh") AS "sold_today_kwh" FROM "energy_day" WHERE $timeFilter GROUP BY "gateway_id"',
        ref_id="sold", table=True,
    )
    built = built.with_panel(
        table.Panel().title("Plants").datasource(MIXED).time_from(TODAY).hide_time_override(True).height(20).span(24)
        .description("Registry rows joined with InfluxDB's sold energy today by gateway id.")
        .with_target(plant_rows).with_target(sold_today)
        .override_by_name("service_code", plant_detail_link())
        .with_transformation(DataTransformerConfig(
            id_val="joinByField", options={"byField": "gateway_id", "mode": "outerTabular"}))
    )
    built = built.with_panel(
        table.Panel().title("Plants without a gateway").height(8).span(24)
        .with_target(sql(
            "SELECT p.service_code, p.name, p.customer_id, p.address FROM plants p "
            "WHERE p.retired_at IS NULL AND NOT EXISTS (SELECT 1 FROM gateways g "
            "WHERE g.service_code = p.service_code AND g.decommissioned_at IS NULL) ORDER BY p.service_code"
        ))
        .override_by_name("service_code", plant_detail_link())
    )
    return built.build()
