"""What every dashboard shares: datasources, query objects, time overrides, panel helpers."""

from __future__ import annotations

import typing

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DynamicConfigValue,
    VariableHide,
    VariableOption,
    VariableRefresh,
)

# The provisioned datasources (deploy/grafana/provisioning/datasources/*.yaml): same uids there.
INFLUX = DataSourceRef(type_val="influxdb", uid="pms-influxdb")
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="pms-prometheus")
REGISTRY = DataSourceRef(type_val="grafana-postgresql-datasource", uid="pms-registry")
# Grafana's built-in "mixed" datasource: each target names its own (a table joining registry rows
# with InfluxDB figures by gateway id).
MIXED = DataSourceRef(type_val="datasource", uid="-- Mixed --")

TIMEZONE = "Asia/Tokyo"  # "today" and "this month" are Japan time: Grafana rounds now/d in this zone
# "Today" is the JST day, read from the day rollups (energy_day, power_day_peak), which are stamped
# at 00:00 JST: any 24 h window ending now holds exactly one such stamp, today's, so a panel over
# them with relative time 24h shows the JST day so far, never a sum of the last 24 h of slots. This
# holds whichever zone Grafana rounds now/d in (versions differ: the dashboard's or the browser's).
TODAY = "24h"
# "This month" is the JST month: from $month_start (00:00 JST on the 1st, which PostgreSQL works out
# from the end of the dashboard's range) within a 31-day panel window, which always holds it. Not
# now/M: Grafana rounds a panel's relative time in the browser's zone in some versions
# (grafana/grafana#59665), which west of Japan would drop the month's rollup point all month.
THIS_MONTH = "31d"
MONTH_SO_FAR = "time >= ${month_start}ms"
LAST_31_DAYS = "now-30d/d"
LAST_12_MONTHS = "now-11M/M"
NOW = "5m"  # "now": the last 5 minutes (three 60 s power intervals and some slack)

# Panels that group by $__interval fix their point budget, so the interval does not depend on the
# panel's width in pixels (and the tests compute the same one Grafana does).
MAX_DATA_POINTS = 500

# The plant's gateways as an InfluxQL regex: `${gateway:regex}` is Grafana's regex format,
# (a|b) with each value regex-escaped; the variable is fed from the registry's bindings.
GATEWAYS = '"gateway_id" =~ /^${gateway:regex}$/'


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target of the InfluxDB datasource in InfluxQL mode."""

    def __init__(self, ref_id: str, query: str, result_format: str, alias: str | None) -> None:
        self.ref_id, self.query, self.result_format, self.alias = ref_id, query, result_format, alias

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "datasource": INFLUX,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload


class SQLQuery(cogvariants.Dataquery):
    """A raw SQL target of the registry's PostgreSQL datasource."""

    def __init__(self, ref_id: str, sql: str, result_format: str) -> None:
        self.ref_id, self.sql, self.result_format = ref_id, sql, result_format

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": REGISTRY,
            "editorMode": "code",
            "rawQuery": True,
            "rawSql": self.sql,
            "format": self.result_format,
        }


class PromQLQuery(cogvariants.Dataquery):
    """A PromQL target. Only Grafana's built-ins ($__rate_interval, $__interval, $__range): the
    rehearsal runs every one of them against its real Prometheus with those expanded."""

    def __init__(self, ref_id: str, expr: str, legend: str | None, instant: bool) -> None:
        self.ref_id, self.expr, self.legend, self.instant = ref_id, expr, legend, instant

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"refId": self.ref_id, "datasource": PROMETHEUS, "expr": self.expr,
                                      "editorMode": "code"}
        if self.instant:
            payload["instant"], payload["range"] = True, False
        if self.legend is not None:
            payload["legendFormat"] = self.legend
        return payload


class Query(cogbuilder.Builder[cogvariants.Dataquery]):
    """A finished target, for a panel's with_target."""

    def __init__(self, query: cogvariants.Dataquery) -> None:
        self._query = query

    def build(self) -> cogvariants.Dataquery:
        return self._query


def influxql(query: str, *, ref_id: str = "A", table: bool = False, alias: str | None = None) -> Query:
    return Query(InfluxQLQuery(ref_id, query, "table" if table else "time_series", alias))


def sql(query: str, *, ref_id: str = "A", table: bool = True) -> Query:
    return Query(SQLQuery(ref_id, query, "table" if table else "time_series"))


def promql(expr: str, *, ref_id: str = "A", legend: str | None = None, instant: bool = False) -> Query:
    return Query(PromQLQuery(ref_id, expr, legend, instant))


def plant_detail_link() -> list[DynamicConfigValue]:
    """A service code cell opens that plant's detail dashboard, keeping the time range."""
    return [DynamicConfigValue(id_val="links", value=[{
        "title": "Plant detail",
        "url": "/d/pms-plant/pms-plant?var-plant=${__value.raw}&${__url_time_range}",
    }])]


def month_start_variable() -> dash.QueryVariable:
    """$month_start: epoch ms of 00:00 JST on the 1st of the month that holds the range's end."""
    return (
        dash.QueryVariable("month_start")
        .label("This month from (JST)")
        .datasource(REGISTRY)
        .query(
            "SELECT (extract(epoch FROM date_trunc('month', $__timeTo()::timestamptz AT TIME ZONE 'Asia/Tokyo') "
            "AT TIME ZONE 'Asia/Tokyo') * 1000)::bigint AS month_start_ms"
        )
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .hide(VariableHide.HIDE_VARIABLE)
    )


def plant_variables() -> list[cogbuilder.Builder[typing.Any]]:
    """$plant picked by service code and name from the registry; $gateway (hidden) the gateways
    bound to it at some time in the dashboard's range, which select its readings in InfluxDB."""
    plant = (
        dash.QueryVariable("plant")
        .label("Plant")
        .datasource(REGISTRY)
        .query(
            "SELECT service_code || ' ' || name AS __text, service_code AS __value FROM plants "
            "WHERE retired_at IS NULL ORDER BY service_code"
        )
        .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .multi(False)
        .include_all(False)
    )
    # A single-value variable goes into SQL as its bare text with quotes doubled, hence '$plant'.
    # Bindings that overlap the range only: a gateway moved to another plant before the range
    # leaves this plant's figures. (InfluxQL cannot OR time ranges, so within the range a gateway
    # counts whole; the console reads the exact binding intervals.)
    gateway = (
        dash.QueryVariable("gateway")
        .label("Gateways of the plant")
        .datasource(REGISTRY)
        .query(
            "SELECT DISTINCT gateway_id FROM gateway_bindings WHERE service_code = '$plant' "
            "AND bound_from <= $__timeTo() AND (bound_until IS NULL OR bound_until >= $__timeFrom()) "
            "ORDER BY gateway_id"
        )
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .current(VariableOption(selected=True, text=["All"], value=["$__all"]))
        .hide(VariableHide.HIDE_VARIABLE)
    )
    return [plant, gateway]


def base(uid: str, title: str, *, time_from: str, refresh: str | None, description: str) -> dash.Dashboard:
    built = (
        dash.Dashboard(title)
        .uid(uid)
        .tags(["pms"])
        .timezone(TIMEZONE)
        .time(time_from, "now")
        .description(description)
        .readonly()
    )
    if refresh is not None:
        built = built.refresh(refresh)
    return built
