"""The read side of the SQLite store: the queries of the API, the console and alerts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

from pms_common import timeutil
from pms_common.messages import Weather
from pms_store import rollup
from pms_store.base import (
    DailyPeak,
    EnergyInterval,
    EnergyPoint,
    LatestPower,
    PowerPoint,
    RegisterAnomaly,
    StoreError,
)
from pms_store.energy import from_micros, to_micros
from pms_store.sqlite.schema import ROLLUP_TABLES, WEATHER_COLUMNS

SLOT_S = rollup.SLOT_S


def _marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


# Runs one SELECT with its arguments and returns its rows; any error is a StoreError.
Select = Callable[[str, Sequence[object]], list[Any]]


class SqliteQueries:
    """The store's read-only queries, run through the function the store hands in."""

    def __init__(self, select: Select) -> None:
        self._select = select

    def latest_power(self, gateway_ids: Iterable[str]) -> dict[str, LatestPower]:
        ids = list(gateway_ids)
        if not ids:
            return {}
        rows = self._select(
            f"SELECT gateway_id, measured_at, power_w FROM latest_power WHERE gateway_id IN ({_marks(ids)})",  # noqa: S608
            ids,
        )
        return {str(gw): LatestPower(str(gw), timeutil.from_epoch(int(t)), int(w)) for gw, t, w in rows}

    def sold_kwh_between(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, float]:
        ids = list(gateway_ids)
        totals = dict.fromkeys(ids, 0.0)
        if not ids:
            return totals
        rows = self._select(
            f"SELECT gateway_id, coalesce(sum(sold_kwh), 0) FROM energy_slot"  # noqa: S608
            f" WHERE gateway_id IN ({_marks(ids)}) AND slot_end > ? AND slot_end <= ? GROUP BY gateway_id",
            [*ids, timeutil.to_epoch(start), timeutil.to_epoch(end)],
        )
        for gw, kwh in rows:
            totals[str(gw)] = round(float(kwh), 6)
        return totals

    def power_series(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> list[PowerPoint]:
        ids = sorted(set(gateway_ids))
        if not ids:
            return []
        rows = self._select(
            "SELECT gateway_id, measured_at, power_w, current_r_a, current_t_a FROM power"  # noqa: S608
            f" WHERE gateway_id IN ({_marks(ids)}) AND measured_at >= ? AND measured_at < ?"
            " ORDER BY gateway_id, measured_at",
            [*ids, timeutil.to_epoch(start), timeutil.to_epoch(end)],
        )
        from_epoch = timeutil.from_epoch
        return [PowerPoint(gw, from_epoch(t), w, r, tt) for gw, t, w, r, tt in rows]

    def energy_series(
        self, gateway_ids: Iterable[str], start: datetime, end: datetime, interval: EnergyInterval
    ) -> list[EnergyPoint]:
        ids = sorted(set(gateway_ids))
        first, last = timeutil.to_epoch(start), timeutil.to_epoch(end)
        if not ids or first >= last:
            return []
        from_epoch = timeutil.from_epoch
        if interval == "30min":
            # A slot [end - 30 min, end) overlaps [first, last) when first < end < last + 30 min.
            rows = self._select(
                "SELECT gateway_id, slot_end, sold_kwh, bought_kwh, 1, backfilled FROM energy_slot"  # noqa: S608
                f" WHERE gateway_id IN ({_marks(ids)}) AND slot_end > ? AND slot_end < ?"
                " AND (sold_kwh IS NOT NULL OR bought_kwh IS NOT NULL) ORDER BY gateway_id, slot_end",
                [*ids, first, last + SLOT_S],
            )
            return [
                EnergyPoint(gw, from_epoch(t - SLOT_S), from_epoch(t), sold, bought, 1, bool(bf))
                for gw, t, sold, bought, _, bf in rows
            ]
        if interval not in ROLLUP_TABLES:
            raise StoreError(f"unknown energy interval {interval!r}: use 30min, hour, day or month")
        rows = self._select(
            f"SELECT gateway_id, period_start, sold_kwh, bought_kwh, slots, backfilled_slots"  # noqa: S608
            f" FROM {ROLLUP_TABLES[interval]} WHERE gateway_id IN ({_marks(ids)})"
            " AND period_start >= ? AND period_start < ? ORDER BY gateway_id, period_start",
            [*ids, rollup.floor_to(interval, first), last],
        )
        return [
            EnergyPoint(
                gw, from_epoch(t), from_epoch(rollup.period_end(interval, t)), sold, bought, slots, bool(bf)
            )
            for gw, t, sold, bought, slots, bf in rows
        ]

    def daily_peaks(self, gateway_ids: Iterable[str], first_day: date, last_day: date) -> list[DailyPeak]:
        ids = sorted(set(gateway_ids))
        if not ids or first_day > last_day:
            return []
        rows = self._select(
            "SELECT gateway_id, day_start, peak_sold_w, measured_at FROM power_day_peak"  # noqa: S608
            f" WHERE gateway_id IN ({_marks(ids)}) AND day_start >= ? AND day_start <= ?"
            " ORDER BY gateway_id, day_start",
            [*ids, timeutil.to_epoch(timeutil.day_start(first_day)), timeutil.to_epoch(timeutil.day_start(last_day))],
        )
        return [
            DailyPeak(str(gw), timeutil.from_epoch(int(day)).date(), int(peak), timeutil.from_epoch(int(t)))
            for gw, day, peak, t in rows
        ]

    def total_sold_kwh(self, gateway_ids: Iterable[str]) -> dict[str, float]:
        ids = list(gateway_ids)
        totals = dict.fromkeys(ids, 0.0)
        if not ids:
            return totals
        rows = self._select(
            f"SELECT gateway_id, coalesce(sum(sold_kwh), 0) FROM energy_month"  # noqa: S608
            f" WHERE gateway_id IN ({_marks(ids)}) GROUP BY gateway_id",
            ids,
        )
        for gw, kwh in rows:
            totals[str(gw)] = round(float(kwh), 6)
        return totals

    def latest_weather(self, service_code: str) -> Weather | None:
        series = self._weather("ORDER BY observed_at DESC LIMIT 1", service_code)
        return series[0] if series else None

    def weather_series(self, service_code: str, start: datetime, end: datetime) -> list[Weather]:
        return self._weather(
            "AND observed_at >= ? AND observed_at < ? ORDER BY observed_at",
            service_code, timeutil.to_epoch(start), timeutil.to_epoch(end),
        )

    def _weather(self, tail: str, service_code: str, *args: object) -> list[Weather]:
        rows = self._select(
            f"SELECT {', '.join(WEATHER_COLUMNS)} FROM weather WHERE service_code = ? {tail}",  # noqa: S608
            [service_code, *args],
        )
        return [
            Weather(
                service_code=service_code,
                observed_at=timeutil.from_epoch(int(t)),
                ghi_w_m2=ghi,
                temperature_c=temp,
                source=source,
                dni_w_m2=dni,
                dhi_w_m2=dhi,
                gti_w_m2=gti,
                cloud_cover_pct=cloud,
                weather_code=code,
                model=model,
                stale=None if stale is None else bool(stale),
            )
            for t, ghi, temp, source, dni, dhi, gti, cloud, code, model, stale in rows
        ]

    def register_anomalies(self, since: datetime, limit: int) -> list[RegisterAnomaly]:
        rows = self._select(
            "SELECT gateway_id, slot_end, direction, previous_kwh, current_kwh, reason, detected_at_us"
            " FROM register_anomaly WHERE detected_at_us >= ?"
            " ORDER BY detected_at_us, gateway_id, slot_end, direction LIMIT ?",
            [to_micros(since), limit],
        )
        return [
            RegisterAnomaly(str(gw), timeutil.from_epoch(int(end)), direction, float(previous), float(current),
                            reason, from_micros(int(detected)))
            for gw, end, direction, previous, current, reason, detected in rows
        ]

