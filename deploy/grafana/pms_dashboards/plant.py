"""Plant detail: one plant, picked by service code and name; its readings through its gateways."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard as DashboardBuilder
from grafana_foundation_sdk.models.common import GraphDrawStyle
from grafana_foundation_sdk.models.dashboard import Dashboard

from pms_dashboards.common import (
    GATEWAYS,
    LAST_12_MONTHS,
    LAST_31_DAYS,
    MAX_DATA_POINTS,
    MONTH_SO_FAR,
    NOW,
    THIS_MONTH,
    TODAY,
    base,
    influxql,
    month_start_variable,
    plant_variables,
)

UID = "pms-plant"

# A rollup point of a period without a known sold slot holds 0 (a field cannot be cleared): the
# bars leave such a period out rather than draw 0 kWh for energy never measured.
KNOWN = '"sold_slots" > 0'


def _stat(title: str, unit: str, time_from: str, query: str, description: str, *, zero: bool = False) -> stat.Panel:
    """`zero`: no data reads 0 (energy not sold yet today); otherwise empty (not measured, not 0 W)."""
    panel = (
        stat.Panel().title(title).description(description).unit(unit).decimals(1)
        .time_from(time_from).hide_time_override(time_from in (TODAY, THIS_MONTH))
        .with_target(influxql(query)).height(4).span(4)
    )
    return panel.no_value("0") if zero else panel


def _bars(title: str, unit: str, query: str, *, time_from: str | None = None) -> timeseries.Panel:
    panel = (
        timeseries.Panel().title(title).unit(unit).with_target(influxql(query)).height(8).span(12)
        .draw_style(GraphDrawStyle.BARS).fill_opacity(80)
    )
    return panel.time_from(time_from) if time_from is not None else panel


# The plant's expected energy (weather service → ingest, docs/expected-yield.md), stamped at each
# slot's start so that GROUP BY time() sums the slots of the hour/day the rollups stamp at its start.
EXPECTED = "FROM \"expected\" WHERE \"service_code\" = '$plant' AND $timeFilter"


def _expected_vs_sold(title: str, rollup: str, group: str, *, time_from: str | None = None) -> timeseries.Panel:
    """`group`: the GROUP BY clause, `fill(none)` and then the time zone if any (InfluxQL's order)."""
    panel = (
        timeseries.Panel().title(title).unit("kwatth").height(8).span(12)
        .description("Sold energy beside the energy the plant's panels should have produced under the sky it "
                     "had (the PV model on its parameters, weather and calibration).")
        .with_target(influxql(
            f'SELECT sum("sold_kwh") FROM "{rollup}" WHERE {GATEWAYS} AND $timeFilter AND {KNOWN} GROUP BY {group}',
            alias="sold"))
        .with_target(influxql(f'SELECT sum("expected_kwh") {EXPECTED} GROUP BY {group}', ref_id="B", alias="expected"))
        .draw_style(GraphDrawStyle.BARS).fill_opacity(60)
    )
    return panel.time_from(time_from) if time_from is not None else panel


def dashboard() -> Dashboard:
    built: DashboardBuilder = base(
        UID, "PMS / Plant", time_from="now-2d", refresh="1m",
        description="One plant: sold power and energy, expected vs sold, peaks, weather. Pick the plant by service "
                    "code and name.",
    )
    for variable in [*plant_variables(), month_start_variable()]:
        built = built.with_variable(variable)
    built = (
        built
        .with_panel(_stat(
            "Sold power now", "watt", NOW,
            f'SELECT sum("sold_w") FROM (SELECT last("sold_power_w") AS "sold_w" FROM "power" '
            f'WHERE {GATEWAYS} AND $timeFilter GROUP BY "gateway_id")',
            "The last reading of each of the plant's gateways in the last 5 minutes, summed; "
            "empty when none came (not measured), which is not 0 W.",
        ))
        .with_panel(_stat(
            "Sold energy today", "kwatth", TODAY,
            f'SELECT sum("sold_kwh") FROM "energy_day" WHERE {GATEWAYS} AND $timeFilter',
            "Since 00:00 JST (the day's rollup), whatever range the dashboard shows.", zero=True,
        ))
        .with_panel(_stat(
            "Bought energy today", "kwatth", TODAY,
            f'SELECT sum("bought_kwh") FROM "energy_day" WHERE {GATEWAYS} AND $timeFilter',
            "Since 00:00 JST (the day's rollup).", zero=True,
        ))
        .with_panel(_stat(
            "Peak sold power today", "watt", TODAY,
            f'SELECT max("peak_sold_w") FROM "power_day_peak" WHERE {GATEWAYS} AND $timeFilter',
            "The highest sold power sample since 00:00 JST.",
        ))
        .with_panel(_stat(
            "Sold energy this month", "kwatth", THIS_MONTH,
            f'SELECT sum("sold_kwh") FROM "energy_month" WHERE {GATEWAYS} AND $timeFilter AND {MONTH_SO_FAR}',
            "Since the 1st, 00:00 JST (the month's rollup).", zero=True,
        ))
        .with_panel(
            timeseries.Panel().title("Sold power (realtime)").unit("watt").max_data_points(MAX_DATA_POINTS)
            .description("Sold power is drawn positive (0 while the plant buys).")
            .with_target(influxql(
                f'SELECT mean("sold_power_w") FROM "power" WHERE {GATEWAYS} AND $timeFilter '
                'GROUP BY time($__interval), "gateway_id" fill(null)', alias="$tag_gateway_id",
            ))
            .height(8).span(12)
        )
        .with_panel(
            timeseries.Panel().title("Solar irradiance (GHI) and temperature").max_data_points(MAX_DATA_POINTS)
            .with_target(influxql(
                'SELECT mean("ghi_w_m2") AS "GHI W/m²", mean("temperature_c") AS "°C" FROM "weather" '
                "WHERE \"service_code\" = '$plant' AND $timeFilter GROUP BY time($__interval) fill(null)",
            ))
            .height(8).span(12)
        )
        .with_panel(_bars(
            "Sold energy per hour", "kwatth",
            f'SELECT sum("sold_kwh") FROM "energy_hour" WHERE {GATEWAYS} AND $timeFilter AND {KNOWN} '
            "GROUP BY time(1h) fill(none)",
        ))
        .with_panel(_bars(
            "Sold energy per day (31 days)", "kwatth",
            f'SELECT sum("sold_kwh") FROM "energy_day" WHERE {GATEWAYS} AND $timeFilter AND {KNOWN} '
            "GROUP BY time(1d) fill(none) tz('Asia/Tokyo')",
            time_from=LAST_31_DAYS,
        ))
        .with_panel(_bars(
            "Sold energy per month (12 months)", "kwatth",
            # One rollup point per gateway and month at the month's start (JST): a 1d group on JST
            # days puts each month in its own bucket, summing the plant's gateways.
            f'SELECT sum("sold_kwh") FROM "energy_month" WHERE {GATEWAYS} AND $timeFilter AND {KNOWN} '
            "GROUP BY time(1d) fill(none) tz('Asia/Tokyo')",
            time_from=LAST_12_MONTHS,
        ))
        .with_panel(_expected_vs_sold("Expected vs sold energy per hour", "energy_hour", "time(1h) fill(none)"))
        .with_panel(_expected_vs_sold("Expected vs sold energy per day (31 days)", "energy_day",
                                      "time(1d) fill(none) tz('Asia/Tokyo')", time_from=LAST_31_DAYS))
        .with_panel(_bars(
            "Peak sold power per day (31 days)", "watt",
            f'SELECT max("peak_sold_w") FROM "power_day_peak" WHERE {GATEWAYS} AND $timeFilter '
            "GROUP BY time(1d) fill(none) tz('Asia/Tokyo')",
            time_from=LAST_31_DAYS,
        ))
        .with_panel(
            timeseries.Panel().title("Currents (E8)").unit("amp").max_data_points(MAX_DATA_POINTS)
            .with_target(influxql(
                f'SELECT mean("current_r_a") AS "R", mean("current_t_a") AS "T" FROM "power" '
                f'WHERE {GATEWAYS} AND $timeFilter GROUP BY time($__interval), "gateway_id" fill(null)',
            ))
            .height(8).span(12)
        )
    )
    return built.build()
