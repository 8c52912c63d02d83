"""The embedded time-series store on SQLite (WAL), one file, many reader threads, one writer.

Raw facts (`power`, `energy_slot`, `weather`) are kept for ever. Derived facts are maintained in the
same transaction as the write that changes them, so readers never see one without the other:
`latest_power`, `power_day_peak` (JST day), and the energy rollups `energy_hour`, `energy_day`,
`energy_month` (JST calendar; a period named by its start). A rollup row is recomputed from the rows
beneath it whenever one of them changes (a late or corrected slot included), never incremented, so
it cannot drift: an hour from its two slots, a day from its 24 hours, a month from its days.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from itertools import repeat
from pathlib import Path
from typing import Any

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
from pms_store import rollup
from pms_store.base import (
    DailyPeak,
    EnergyInterval,
    EnergyPoint,
    GatewayReadings,
    LatestPower,
    PowerPoint,
    StoreError,
    StoreRefused,
    WriteOutcome,
)
from pms_store.energy import slot_delta

SLOT_S = rollup.SLOT_S
SCHEMA_VERSION = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS power (
    gateway_id TEXT NOT NULL,
    measured_at INTEGER NOT NULL,
    power_w INTEGER NOT NULL,
    current_r_a REAL,
    current_t_a REAL,
    PRIMARY KEY (gateway_id, measured_at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest_power (
    gateway_id TEXT PRIMARY KEY,
    measured_at INTEGER NOT NULL,
    power_w INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS power_day_peak (
    gateway_id TEXT NOT NULL,
    day_start INTEGER NOT NULL,
    peak_sold_w INTEGER NOT NULL,
    measured_at INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, day_start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS energy_slot (
    gateway_id TEXT NOT NULL,
    slot_end INTEGER NOT NULL,
    forward_kwh REAL,
    reverse_kwh REAL,
    wrap_kwh REAL,
    backfilled INTEGER NOT NULL DEFAULT 0,
    bought_kwh REAL,
    sold_kwh REAL,
    PRIMARY KEY (gateway_id, slot_end)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS weather (
    service_code TEXT NOT NULL,
    observed_at INTEGER NOT NULL,
    ghi_w_m2 REAL NOT NULL,
    temperature_c REAL,
    source TEXT NOT NULL,
    PRIMARY KEY (service_code, observed_at)
) WITHOUT ROWID;
"""

# One table per rollup level; `slots` counts the slots with a derived energy (sold or bought).
ROLLUP_TABLES = {"hour": "energy_hour", "day": "energy_day", "month": "energy_month"}
ROLLUP_SCHEMA = "".join(
    f"""
CREATE TABLE IF NOT EXISTS {table} (
    gateway_id TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    sold_kwh REAL,
    bought_kwh REAL,
    slots INTEGER NOT NULL,
    backfilled_slots INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, period_start)
) WITHOUT ROWID;"""
    for table in ROLLUP_TABLES.values()
)

# SQLite's integer division floors toward zero; every epoch here is positive, so it floors.
_REBUILD = """
DELETE FROM energy_hour; DELETE FROM energy_day; DELETE FROM energy_month; DELETE FROM power_day_peak;
INSERT INTO energy_hour
    SELECT gateway_id, (slot_end - 1800) / 3600 * 3600, round(sum(sold_kwh), 6), round(sum(bought_kwh), 6),
           count(*), sum(backfilled != 0)
    FROM energy_slot WHERE sold_kwh IS NOT NULL OR bought_kwh IS NOT NULL GROUP BY 1, 2;
INSERT INTO energy_day
    SELECT gateway_id, (period_start + 32400) / 86400 * 86400 - 32400, round(sum(sold_kwh), 6),
           round(sum(bought_kwh), 6), sum(slots), sum(backfilled_slots)
    FROM energy_hour GROUP BY 1, 2;
INSERT INTO energy_month
    SELECT gateway_id,
           CAST(strftime('%s', datetime(period_start + 32400, 'unixepoch', 'start of month')) AS INTEGER) - 32400,
           round(sum(sold_kwh), 6), round(sum(bought_kwh), 6), sum(slots), sum(backfilled_slots)
    FROM energy_day GROUP BY 1, 2;
INSERT INTO power_day_peak
    SELECT gateway_id, day_start, peak, min(measured_at) FROM (
        SELECT p.gateway_id, (p.measured_at + 32400) / 86400 * 86400 - 32400 AS day_start,
               max(0, -p.power_w) AS sold, p.measured_at,
               max(max(0, -p.power_w)) OVER (
                   PARTITION BY p.gateway_id, (p.measured_at + 32400) / 86400) AS peak
        FROM power AS p)
    WHERE sold = peak GROUP BY gateway_id, day_start;
"""


def _marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


class SqliteStore:
    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        """`synchronous` FULL makes every commit durable (ingest acks only what survives a power
        cut); NORMAL survives a crash of the process, not of the machine (bulk loads, benches)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._local = threading.local()
        self._write_lock = threading.Lock()
        with self._write_lock:
            conn = self._conn()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.executescript(SCHEMA + ROLLUP_SCHEMA)
            if version < SCHEMA_VERSION:
                # A store written before the rollups existed: derive them once from the raw facts.
                conn.executescript(f"BEGIN IMMEDIATE; {_REBUILD} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
            self._local.conn = conn
        return conn

    # --- writes ----------------------------------------------------------------------------------

    def write_readings(
        self, gateway_id: str, power: Sequence[PowerReading], energy: Sequence[EnergyReading]
    ) -> WriteOutcome:
        return self.write_many([GatewayReadings(gateway_id, power, energy)])[0]

    def write_many(self, batches: Sequence[GatewayReadings]) -> list[WriteOutcome]:
        outcomes = [WriteOutcome() for _ in batches]
        if not batches:
            return outcomes
        with self._write_lock:
            conn = self._conn()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._write_power(conn, batches, outcomes)
                    hours: set[tuple[str, int]] = set()
                    for batch, outcome in zip(batches, outcomes, strict=True):
                        if batch.energy:
                            hours |= self._write_energy(conn, batch.gateway_id, batch.energy, outcome)
                    self._roll_up(conn, hours)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except (sqlite3.IntegrityError, sqlite3.DataError) as exc:
                raise StoreRefused(f"the store {self.path} refused a write: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"the store {self.path} failed a write: {exc}") from exc
        return outcomes

    def _write_power(
        self, conn: sqlite3.Connection, batches: Sequence[GatewayReadings], outcomes: list[WriteOutcome]
    ) -> None:
        # The hot path of ingest: per reading only list building; the rest is per batch.
        rows: list[tuple[str, int, int, float | None, float | None]] = []
        newest: dict[str, tuple[int, int]] = {}
        peaks: dict[tuple[str, int], tuple[int, int]] = {}  # (gw, day) -> (sold, -measured_at), max wins
        for batch, outcome in zip(batches, outcomes, strict=True):
            power = batch.power
            outcome.power_written = len(power)
            if not power:
                continue
            gw = batch.gateway_id
            # Readings were validated timezone-aware, so timestamp() is the epoch.
            times = [int(p.measured_at.timestamp()) for p in power]
            watts = [p.power_w for p in power]
            rows.extend(zip(repeat(gw), times, watts, [p.current_r_a for p in power],
                            [p.current_t_a for p in power], strict=False))
            t, w = max(zip(times, watts, strict=True))
            if gw not in newest or t > newest[gw][0]:
                newest[gw] = (t, w)
            candidates = zip([-w if w < 0 else 0 for w in watts], [-t for t in times], strict=True)
            if rollup.day_start(min(times)) == rollup.day_start(max(times)):
                day_peaks = {rollup.day_start(times[0]): max(candidates)}
            else:
                day_peaks = {}
                for sold, neg_t in candidates:
                    day = rollup.day_start(-neg_t)
                    if day not in day_peaks or (sold, neg_t) > day_peaks[day]:
                        day_peaks[day] = (sold, neg_t)
            for day, peak in day_peaks.items():
                if (gw, day) not in peaks or peak > peaks[(gw, day)]:
                    peaks[(gw, day)] = peak
        if not rows:
            return
        # The first copy of a reading wins; a resent one is the same reading.
        conn.executemany("INSERT OR IGNORE INTO power VALUES (?, ?, ?, ?, ?)", rows)
        conn.executemany(
            "INSERT INTO latest_power VALUES (?, ?, ?) ON CONFLICT(gateway_id) DO UPDATE SET "
            "measured_at = excluded.measured_at, power_w = excluded.power_w "
            "WHERE excluded.measured_at > latest_power.measured_at",
            [(gw, t, watts) for gw, (t, watts) in newest.items()],
        )
        # Highest sold power of the day, the earliest sample at that figure on a tie.
        conn.executemany(
            "INSERT INTO power_day_peak VALUES (?, ?, ?, ?) ON CONFLICT(gateway_id, day_start) DO UPDATE SET "
            "peak_sold_w = excluded.peak_sold_w, measured_at = excluded.measured_at "
            "WHERE excluded.peak_sold_w > power_day_peak.peak_sold_w OR (excluded.peak_sold_w = "
            "power_day_peak.peak_sold_w AND excluded.measured_at < power_day_peak.measured_at)",
            [(gw, day, sold, -neg_t) for (gw, day), (sold, neg_t) in peaks.items()],
        )

    def _write_energy(
        self, conn: sqlite3.Connection, gateway_id: str, energy: Sequence[EnergyReading], outcome: WriteOutcome
    ) -> set[tuple[str, int]]:
        """Store the registers, re-derive the slots they affect; returns the (gateway, hour)s touched."""
        touched: set[int] = set()
        rows = []
        for reading in energy:
            slot_end = timeutil.to_epoch(reading.slot_end)
            rows.append((gateway_id, slot_end, reading.forward_kwh, reading.reverse_kwh,
                         reading.register_wrap_kwh, int(reading.backfilled)))
            touched.update((slot_end, slot_end + SLOT_S))
        conn.executemany(
            "INSERT INTO energy_slot (gateway_id, slot_end, forward_kwh, reverse_kwh, wrap_kwh, backfilled)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(gateway_id, slot_end) DO UPDATE SET"
            " forward_kwh = coalesce(excluded.forward_kwh, forward_kwh),"
            " reverse_kwh = coalesce(excluded.reverse_kwh, reverse_kwh),"
            " wrap_kwh = coalesce(excluded.wrap_kwh, wrap_kwh),"
            " backfilled = min(backfilled, excluded.backfilled)",
            rows,
        )
        for slot_end in sorted(touched):
            self._derive_slot(conn, gateway_id, slot_end, outcome)
        outcome.slots_written = len(energy)
        return {(gateway_id, rollup.hour_of_slot(slot_end)) for slot_end in touched}

    def _derive_slot(self, conn: sqlite3.Connection, gateway_id: str, slot_end: int, outcome: WriteOutcome) -> None:
        """(Re)compute a slot's energy from its register and the one before: late slots correct it."""
        rows = conn.execute(
            "SELECT slot_end, forward_kwh, reverse_kwh, wrap_kwh FROM energy_slot"
            " WHERE gateway_id = ? AND slot_end IN (?, ?)",
            (gateway_id, slot_end - SLOT_S, slot_end),
        ).fetchall()
        by_end = {row[0]: row for row in rows}
        current = by_end.get(slot_end)
        if current is None:
            return
        previous = by_end.get(slot_end - SLOT_S)
        bought = sold = None
        if previous is not None:
            wrap = current[3] or previous[3]
            if previous[1] is not None and current[1] is not None:
                delta = slot_delta(previous[1], current[1], wrap)
                bought = delta.kwh
                if delta.anomaly:
                    outcome.register_anomalies.append(f"forward register at slot {slot_end}: {delta.anomaly}")
            if previous[2] is not None and current[2] is not None:
                delta = slot_delta(previous[2], current[2], wrap)
                sold = delta.kwh
                if delta.anomaly:
                    outcome.register_anomalies.append(f"reverse register at slot {slot_end}: {delta.anomaly}")
        conn.execute(
            "UPDATE energy_slot SET bought_kwh = ?, sold_kwh = ? WHERE gateway_id = ? AND slot_end = ?",
            (bought, sold, gateway_id, slot_end),
        )

    def _roll_up(self, conn: sqlite3.Connection, hours: set[tuple[str, int]]) -> None:
        """Recompute the hour, day and month rows above the touched hours, each from the level below."""
        days: set[tuple[str, int]] = set()
        for gw, hour in hours:
            self._recompute(
                conn, "energy_hour", gw, hour,
                query="SELECT round(sum(sold_kwh), 6), round(sum(bought_kwh), 6), count(*), sum(backfilled != 0)"
                " FROM energy_slot WHERE gateway_id = ? AND slot_end > ? AND slot_end <= ?"
                " AND (sold_kwh IS NOT NULL OR bought_kwh IS NOT NULL)",
                args=(gw, hour, hour + rollup.HOUR_S),
            )
            days.add((gw, rollup.day_start(hour)))
        months: set[tuple[str, int]] = set()
        for gw, day in days:
            self._recompute(conn, "energy_day", gw, day, query=_SUM_BELOW.format(table="energy_hour"),
                            args=(gw, day, day + rollup.DAY_S))
            months.add((gw, rollup.month_start(day)))
        for gw, month in months:
            self._recompute(conn, "energy_month", gw, month, query=_SUM_BELOW.format(table="energy_day"),
                            args=(gw, month, rollup.next_month_start(month)))

    @staticmethod
    def _recompute(
        conn: sqlite3.Connection, table: str, gw: str, start: int, *, query: str, args: tuple[object, ...]
    ) -> None:
        sold, bought, slots, backfilled = conn.execute(query, args).fetchone()
        if not slots:
            conn.execute(f"DELETE FROM {table} WHERE gateway_id = ? AND period_start = ?", (gw, start))  # noqa: S608
        else:
            conn.execute(
                f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
                (gw, start, sold, bought, slots, backfilled),
            )

    def write_weather(self, weather: Sequence[Weather]) -> None:
        with self._write_lock:
            conn = self._conn()
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO weather VALUES (?, ?, ?, ?, ?)",
                    [
                        (w.service_code, timeutil.to_epoch(w.observed_at), w.ghi_w_m2, w.temperature_c, w.source)
                        for w in weather
                    ],
                )
            except sqlite3.Error as exc:
                raise StoreError(f"the store {self.path} refused weather: {exc}") from exc

    # --- queries ---------------------------------------------------------------------------------

    def _select(self, sql: str, args: Sequence[object]) -> list[Any]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"the store {self.path} refused a query: {exc}") from exc

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
            f"SELECT observed_at, ghi_w_m2, temperature_c, source FROM weather WHERE service_code = ? {tail}",  # noqa: S608
            [service_code, *args],
        )
        return [
            Weather(
                service_code=service_code,
                observed_at=timeutil.from_epoch(int(t)),
                ghi_w_m2=ghi,
                temperature_c=temp,
                source=source,
            )
            for t, ghi, temp, source in rows
        ]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


_SUM_BELOW = (
    "SELECT round(sum(sold_kwh), 6), round(sum(bought_kwh), 6), sum(slots), sum(backfilled_slots)"
    " FROM {table} WHERE gateway_id = ? AND period_start >= ? AND period_start < ?"
)
