"""Fleet / gateways: every gateway's state, binding and last heartbeat (registry)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table
from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
from grafana_foundation_sdk.models.dashboard import Dashboard

from pms_dashboards.common import base, plant_detail_link, sql

UID = "pms-fleet"


def dashboard() -> Dashboard:
    built: DashboardBuilder = base(
        UID, "PMS / Fleet", time_from="now-7d", refresh="1m",
        description="Gateways: state, plant, firmware and health from their last heartbeat.",
    )
    built = (
        built
        .with_panel(
            stat.Panel().title("Gateways by state").height(4).span(24)
            .with_target(sql(
                "SELECT count(*) FILTER (WHERE status = 'online') AS online, "
                "count(*) FILTER (WHERE status <> 'online' AND service_code IS NOT NULL) AS offline, "
                "count(*) FILTER (WHERE service_code IS NULL) AS unbound "
                "FROM gateways WHERE decommissioned_at IS NULL"
            ))
        )
        .with_panel(
            table.Panel().title("Gateways").height(16).span(24)
            .with_target(sql(
                "SELECT g.gateway_id, g.service_code, p.name AS plant, g.status, g.status_changed_at, "
                "g.last_seen_at, g.heartbeat->>'firmware' AS firmware, "
                "(g.heartbeat->>'rssi_dbm')::int AS rssi_dbm, "
                "(g.heartbeat->>'outbox_depth')::int AS outbox_depth "
                "FROM gateways g LEFT JOIN plants p ON p.service_code = g.service_code "
                "WHERE g.decommissioned_at IS NULL ORDER BY g.gateway_id"
            ))
            .override_by_name("service_code", plant_detail_link())
        )
        .with_panel(
            table.Panel().title("State changes in range").height(10).span(24)
            .with_target(sql(
                "SELECT at, gateway_id, state, reason FROM gateway_presence WHERE $__timeFilter(at) "
                "ORDER BY at DESC LIMIT 200"
            ))
        )
    )
    return built.build()
