"""The Grafana expansion the dashboard tests (and the rehearsal's PromQL) rely on."""

from __future__ import annotations

from datetime import datetime

from pms_common.timeutil import JST
from tests.deploy.grafana_expand import (
    TimeRange,
    Variable,
    date_math,
    expand_influxql,
    expand_promql,
    expand_sql,
    format_interval,
    interpolate,
    interval_ms,
)

NOW = datetime(2026, 3, 31, 0, 30, tzinfo=JST)  # 30 March 15:30 UTC: the JST day differs from UTC's


def test_date_math_rounds_in_the_dashboards_zone() -> None:
    assert date_math("now/d", NOW, "Asia/Tokyo") == datetime(2026, 3, 31, tzinfo=JST)
    assert date_math("now/M", NOW, "Asia/Tokyo") == datetime(2026, 3, 1, tzinfo=JST)
    assert date_math("now-30d/d", NOW, "Asia/Tokyo") == datetime(2026, 3, 1, tzinfo=JST)
    assert date_math("now-1M", NOW, "Asia/Tokyo") == datetime(2026, 2, 28, 0, 30, tzinfo=JST)  # clamped
    assert date_math("now-11M/M", NOW, "Asia/Tokyo") == datetime(2025, 4, 1, tzinfo=JST)


def test_interval_is_rounded_and_bounded_by_the_datasource_minimum() -> None:
    two_days = TimeRange(datetime(2026, 3, 29, tzinfo=JST), datetime(2026, 3, 31, tzinfo=JST))
    assert interval_ms(two_days, 500, 60) == 300_000  # 345.6 s rounds to 5 m
    assert interval_ms(two_days, 10_000, 60) == 60_000  # 17.28 s → 15 s, below the 60 s minimum
    assert [format_interval(ms) for ms in (300_000, 3_600_000, 86_400_000, 15_000, 500)] == [
        "5m", "1h", "1d", "15s", "500ms"]


def test_macros_expand_as_the_datasources_backends_do() -> None:
    rng = TimeRange(datetime(2026, 3, 31, tzinfo=JST), NOW)
    assert expand_influxql("WHERE $timeFilter GROUP BY time($__interval)", rng, 60_000) == (
        "WHERE time >= 1774882800000ms and time <= 1774884600000ms GROUP BY time(1m)")
    assert expand_sql("WHERE $__timeFilter(at) AND x < $__timeTo()", rng) == (
        "WHERE at BETWEEN '2026-03-30T15:00:00Z' AND '2026-03-30T15:30:00Z' AND x < '2026-03-30T15:30:00Z'")
    assert expand_promql("rate(x[$__rate_interval]) + y[$__range] + z[$__interval]", interval_s=15,
                         range_s=3600) == "rate(x[60s]) + y[3600s] + z[15s]"
    assert expand_promql("rate(x[$__rate_interval])", interval_s=60, range_s=3600) == "rate(x[75s])"


def test_template_variables_take_grafanas_formats() -> None:
    many = {"g": Variable("g", ("a.1", "b/2"), multi=True), "p": Variable("p", ("O'Hara",))}
    assert interpolate("/^${g:regex}$/", many, "influxql") == r"/^(a\.1|b\/2)$/"
    assert interpolate("/^$g$/", many, "influxql") == r"/^(a\.1|b\/2)$/"
    assert interpolate("name = '$p'", many, "sql") == "name = 'O''Hara'"
    assert interpolate("code IN ($g)", many, "sql") == "code IN ('a.1','b/2')"
    assert interpolate("label_replace(x, \"c\", \"$1\", ...)", many, "influxql") == 'label_replace(x, "c", "$1", ...)'
