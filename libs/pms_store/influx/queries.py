"""The read side of the InfluxDB store: the queries of the API, the console and alerts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any, cast

from pms_common import timeutil
from pms_common.messages import Weather
from pms_store import rollup
from pms_store.base import (
    AnomalyDirection,
    DailyPeak,
    EnergyInterval,
    EnergyPoint,
    LatestPower,
    PowerPoint,
    RegisterAnomaly,
    StoreError,
)
from pms_store.energy import from_micros, to_micros
from pms_store.influx.influxql import IDS_PER_QUERY, Series, chunks, float_or_none, ql_any_of, ql_string, ql_time
from pms_store.influx.schema import ROLLUP_FIELDS, ROLLUP_MEASUREMENTS, SLOT_FIELDS, rollup_of, slot_of

SLOT_S = rollup.SLOT_S


# Runs InfluxQL statements (in one round trip where the server allows) and returns the series of
# each, in order; any error is a StoreError.
RunStatements = Callable[[Sequence[str]], list[list[Series]]]


class InfluxQueries:
    """The store's read-only queries, run through the function the store hands in."""

    def __init__(self, run_statements: RunStatements) -> None:
        self._run_statements = run_statements

    def _query(self, q: str) -> list[Series]:
        """One statement's series."""
        return [series for result in self._run_statements([q]) for series in result]

    def _select_by_gateway(self, select: str, ids: Sequence[str], where: str = "") -> dict[str, list[dict[str, Any]]]:
        """Rows of `select ... WHERE <gateway in ids> [AND where] GROUP BY gateway_id`, by gateway."""
        rows: dict[str, list[dict[str, Any]]] = {}
        statements = [
            f"{select} WHERE {ql_any_of('gateway_id', chunk)}{' AND ' + where if where else ''} GROUP BY gateway_id"
            for chunk in chunks(ids, IDS_PER_QUERY)
        ]
        for result in self._run_statements(statements):
            for series in result:
                gw = series.tags.get("gateway_id")
                if gw is not None:
                    rows.setdefault(gw, []).extend(series.rows)
        return rows

    def latest_power(self, gateway_ids: Iterable[str]) -> dict[str, LatestPower]:
        ids = list(dict.fromkeys(gateway_ids))
        latest: dict[str, LatestPower] = {}
        # last() picks the point with the newest time, whatever order the points were written in.
        # Unbounded, it reads every shard of a series (a year: ~0.3 s for 100 gateways); a gateway
        # that reports has its newest sample in the last day, so the windows widen only for the rest.
        for window in ("time > now() - 1d", "time > now() - 35d", ""):
            missing = [gw for gw in ids if gw not in latest]
            if not missing:
                break
            for gw, rows in self._select_by_gateway("SELECT last(power_w) FROM power", missing, window).items():
                if rows and rows[0].get("last") is not None:
                    latest[gw] = LatestPower(gw, timeutil.from_epoch(int(rows[0]["time"])), int(rows[0]["last"]))
        return latest

    def sold_kwh_between(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, float]:
        ids = list(dict.fromkeys(gateway_ids))
        totals = dict.fromkeys(ids, 0.0)
        first, last = timeutil.to_epoch(start), timeutil.to_epoch(end)
        if first >= last or not ids:
            return totals
        found = self._select_by_gateway(
            "SELECT sum(sold_kwh) FROM energy_slot", ids, f"time > {ql_time(first)} AND time <= {ql_time(last)}"
        )
        for gw, rows in found.items():
            if gw in totals and rows and rows[0].get("sum") is not None:
                totals[gw] = round(float(rows[0]["sum"]), 6)
        return totals

    def power_series(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> list[PowerPoint]:
        ids = sorted(set(gateway_ids))
        first, last = timeutil.to_epoch(start), timeutil.to_epoch(end)
        if not ids or first >= last:
            return []
        found = self._select_by_gateway(
            "SELECT power_w, current_r_a, current_t_a FROM power", ids,
            f"time >= {ql_time(first)} AND time < {ql_time(last)}",
        )
        from_epoch = timeutil.from_epoch
        return [
            PowerPoint(gw, from_epoch(int(row["time"])), int(row["power_w"]),
                       float_or_none(row.get("current_r_a")), float_or_none(row.get("current_t_a")))
            for gw in sorted(found)
            for row in found[gw]
            if row.get("power_w") is not None
        ]

    def energy_series(
        self, gateway_ids: Iterable[str], start: datetime, end: datetime, interval: EnergyInterval
    ) -> list[EnergyPoint]:
        ids = sorted(set(gateway_ids))
        first, last = timeutil.to_epoch(start), timeutil.to_epoch(end)
        if not ids or first >= last:
            return []
        from_epoch = timeutil.from_epoch
        points: list[EnergyPoint] = []
        if interval == "30min":
            found = self._select_by_gateway(
                f"SELECT {', '.join(SLOT_FIELDS)} FROM energy_slot", ids,  # noqa: S608
                f"time > {ql_time(first)} AND time < {ql_time(last + SLOT_S)}",
            )
            for gw in sorted(found):
                for row in found[gw]:
                    stored = slot_of(row)
                    if stored.sold_known or stored.bought_known:
                        t = int(row["time"])
                        points.append(EnergyPoint(
                            gw, from_epoch(t - SLOT_S), from_epoch(t),
                            stored.sold_kwh if stored.sold_known else None,
                            stored.bought_kwh if stored.bought_known else None,
                            1, bool(stored.backfilled),
                        ))
            return points
        if interval not in ROLLUP_MEASUREMENTS:
            raise StoreError(f"unknown energy interval {interval!r}: use 30min, hour, day or month")
        found = self._select_by_gateway(
            f"SELECT {', '.join(ROLLUP_FIELDS)} FROM {ROLLUP_MEASUREMENTS[interval]}", ids,  # noqa: S608
            f"time >= {ql_time(rollup.floor_to(interval, first))} AND time < {ql_time(last)}",
        )
        for gw in sorted(found):
            for row in found[gw]:
                total = rollup_of(row)
                if total.slots > 0:
                    t = int(row["time"])
                    points.append(total.point(gw, from_epoch(t), from_epoch(rollup.period_end(interval, t))))
        return points

    def daily_peaks(self, gateway_ids: Iterable[str], first_day: date, last_day: date) -> list[DailyPeak]:
        ids = sorted(set(gateway_ids))
        if not ids or first_day > last_day:
            return []
        first = timeutil.to_epoch(timeutil.day_start(first_day))
        last = timeutil.to_epoch(timeutil.day_start(last_day))
        found = self._select_by_gateway(
            "SELECT peak_sold_w, measured_at FROM power_day_peak", ids,
            f"time >= {ql_time(first)} AND time <= {ql_time(last)}",
        )
        return [
            DailyPeak(gw, timeutil.from_epoch(int(row["time"])).date(), int(row["peak_sold_w"]),
                      timeutil.from_epoch(int(row["measured_at"])))
            for gw in sorted(found)
            for row in found[gw]
            if row.get("peak_sold_w") is not None and row.get("measured_at") is not None
        ]

    def total_sold_kwh(self, gateway_ids: Iterable[str]) -> dict[str, float]:
        ids = list(dict.fromkeys(gateway_ids))
        totals = dict.fromkeys(ids, 0.0)
        # A month whose energy was voided keeps sold_kwh = 0.0 (line protocol cannot clear a field).
        for gw, rows in self._select_by_gateway("SELECT sum(sold_kwh) FROM energy_month", ids).items():
            if gw in totals and rows and rows[0].get("sum") is not None:
                totals[gw] = round(float(rows[0]["sum"]), 6)
        return totals

    def latest_weather(self, service_code: str) -> Weather | None:
        series = self._weather_rows(service_code, "ORDER BY time DESC LIMIT 1")
        return series[0] if series else None

    def weather_series(self, service_code: str, start: datetime, end: datetime) -> list[Weather]:
        first, last = timeutil.to_epoch(start), timeutil.to_epoch(end)
        if first >= last:
            return []
        return self._weather_rows(service_code, f"AND time >= {ql_time(first)} AND time < {ql_time(last)}")

    def _weather_rows(self, service_code: str, tail: str) -> list[Weather]:
        series = self._query(
            "SELECT ghi_w_m2, temperature_c, source, dni_w_m2, dhi_w_m2, gti_w_m2, cloud_cover_pct,"  # noqa: S608
            " weather_code, model, stale FROM weather"
            f" WHERE service_code = {ql_string(service_code)} {tail}"
        )
        return [
            Weather(
                service_code=service_code,
                observed_at=timeutil.from_epoch(int(row["time"])),
                ghi_w_m2=float(row["ghi_w_m2"]),
                temperature_c=float_or_none(row.get("temperature_c")),
                source=str(row["source"]),
                dni_w_m2=float_or_none(row.get("dni_w_m2")),
                dhi_w_m2=float_or_none(row.get("dhi_w_m2")),
                gti_w_m2=float_or_none(row.get("gti_w_m2")),
                cloud_cover_pct=float_or_none(row.get("cloud_cover_pct")),
                weather_code=None if row.get("weather_code") is None else int(row["weather_code"]),
                model=None if row.get("model") is None else str(row["model"]),
                stale=None if row.get("stale") is None else bool(row["stale"]),
            )
            for s in series
            for row in s.rows
            if row.get("ghi_w_m2") is not None and row.get("source") is not None
        ]

    def register_anomalies(self, since: datetime, limit: int) -> list[RegisterAnomaly]:
        # Detection time is a field, and InfluxQL orders by time only: the (few) anomalies detected
        # since are filtered on the server and ordered here.
        series = self._query(
            "SELECT previous_kwh, current_kwh, reason, detected_at_us FROM register_anomaly"  # noqa: S608
            f" WHERE detected_at_us >= {to_micros(since)} GROUP BY gateway_id, direction"
        )
        found = [
            RegisterAnomaly(
                s.tags["gateway_id"], timeutil.from_epoch(int(row["time"])),
                cast(AnomalyDirection, s.tags["direction"]),
                float(row["previous_kwh"]), float(row["current_kwh"]), row["reason"],
                from_micros(int(row["detected_at_us"])),
            )
            for s in series
            for row in s.rows
            if s.tags.get("gateway_id") and s.tags.get("direction") in ("forward", "reverse")
            and row.get("detected_at_us") is not None and row.get("reason") in ("backwards", "jump")
        ]
        found.sort(key=lambda a: (a.detected_at, a.gateway_id, a.slot_end, a.direction))
        return found[:limit]
