"""Operations: services up, ingest and service counters, dead letters, gateways online, memory, CPU.

PromQL only with Grafana's built-ins ($__rate_interval, $__interval, $__range): the rehearsal runs
every expression here against its real Prometheus with those expanded (tests/deploy/dashboard_queries.py).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
from grafana_foundation_sdk.models.dashboard import Dashboard

from pms_dashboards.common import base, promql, sql

UID = "pms-ops"

ONLINE = "pms_device_manager_gateways_online"
FLEET = "pms_device_manager_gateways"  # by condition, counted from the registry


def _series(title: str, unit: str, expr: str, legend: str) -> timeseries.Panel:
    return timeseries.Panel().title(title).unit(unit).with_target(promql(expr, legend=legend)).height(8).span(12)


def dashboard() -> Dashboard:
    built: DashboardBuilder = base(
        UID, "PMS / Operations", time_from="now-6h", refresh="30s",
        description="Every PMS service's /metrics as Prometheus scrapes them.",
    )
    built = (
        built
        .with_panel(
            stat.Panel().title("Services up").height(4).span(8)
            .with_target(promql('up{job=~"pms-.+"}', legend="{{job}}", instant=True))
        )
        .with_panel(
            stat.Panel().title("Gateways online").unit("none").height(4).span(4)
            .description("device-manager's count of gateways whose last word was online.")
            .with_target(promql(f"sum({ONLINE})", legend="online", instant=True))
        )
        .with_panel(
            stat.Panel().title("Share of installed gateways offline").unit("percentunit")
            .height(4).span(6)
            .description("Offline against online and offline (gateways bound to a plant and heard from), "
                         "from device-manager's count of the registry: what the alert "
                         "PMSGatewaysOnlineFalling compares with 10% (deploy/prometheus/alerts.yml).")
            .with_target(promql(f'sum({FLEET}{{condition="offline"}}) / sum({FLEET}{{condition=~"online|offline"}})',
                                legend="share", instant=True))
        )
        .with_panel(
            stat.Panel().title("Share of bound gateways online (registry)").unit("percentunit").decimals(2)
            .height(4).span(6)
            .with_target(sql(
                "SELECT count(*) FILTER (WHERE status = 'online')::float / NULLIF(count(*), 0) AS share "
                "FROM gateways WHERE decommissioned_at IS NULL AND service_code IS NOT NULL"
            ))
        )
        .with_panel(_series(
            "Gateways online", "none", f"sum({ONLINE})", "online",
        ))
        # rate() drops the metric name, so the counter label is made from it first, and the rate
        # of that is a subquery ([5m:30s]: a range over a function needs one).
        .with_panel(_series(
            "Ingest counters (per second)", "ops",
            'sum by (counter) (rate(label_replace({__name__=~"pms_ingest_.+_total", job="pms-ingest"}, '
            '"counter", "$1", "__name__", "pms_ingest_(.+)_total")[5m:30s]))',
            "{{counter}}",
        ))
        .with_panel(_series(
            "Dead letters (per second)", "ops", "sum by (job) (rate(pms_ingest_deadletter_total[$__rate_interval]))",
            "{{job}}",
        ))
        .with_panel(
            stat.Panel().title("Dead letters (last 24 h)").unit("short").height(4).span(6)
            .with_target(promql("sum(increase(pms_ingest_deadletter_total[24h]))", legend="ingest", instant=True))
        )
        .with_panel(_series(
            # From heartbeats (gateways are not scraped); the ten deepest, so 10,000 gateways stay one panel.
            "Gateway outbox depth (the ten deepest)", "short",
            "topk(10, max by (gateway_id) (pms_device_manager_gateway_outbox_depth))", "{{gateway_id}}",
        ))
        .with_panel(_series(
            "Service counters (per second)", "ops",
            'sum by (job, counter) (rate(label_replace({__name__=~"pms_.+_total", '
            'job=~"pms-(alerts|weather|device-manager|api)"}, "counter", "$1", "__name__", "pms_(.+)_total")'
            "[5m:30s]))",
            "{{job}} {{counter}}",
        ))
        .with_panel(_series(
            "Resident memory", "bytes", 'process_resident_memory_bytes{job=~"pms-.+"}', "{{job}}",
        ))
        .with_panel(_series(
            "CPU", "percentunit", 'rate(process_cpu_seconds_total{job=~"pms-.+"}[$__rate_interval])', "{{job}}",
        ))
    )
    return built.build()
