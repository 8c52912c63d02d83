"""The embedded time-series store on SQLite (WAL), one file, many reader threads, one writer.

Raw facts (`power`, `energy_slot`, `weather`, `expected_energy`) are kept for ever. Derived facts are maintained in the
same transaction as the write that changes them, so readers never see one without the other:
`latest_power`, `power_day_peak` (JST day), and the energy rollups `energy_hour`, `energy_day`,
`energy_month` (JST calendar; a period named by its start). A rollup row is recomputed from the rows
beneath it whenever one of them changes (a late or corrected slot included), never incremented, so
it cannot drift: an hour from its two slots, a day from its 24 hours, a month from its days.
A register anomaly found deriving a slot is kept in `register_anomaly`, once per slot and register.
Tables and rollup SQL live in `schema`, the queries in `queries`.
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
from pms_common.messages import EnergyReading, ExpectedYield, PowerReading, Weather
from pms_store import rollup
from pms_store.base import (
    DailyPeak,
    EnergyInterval,
    EnergyPoint,
    GatewayReadings,
    LatestPower,
    PowerPoint,
    RegisterAnomaly,
    StoreError,
    StoreRefused,
    WriteOutcome,
)
from pms_store.energy import anomalies_of_slot, derive_slot, describe, to_micros
from pms_store.sqlite.queries import SqliteQueries
from pms_store.sqlite.schema import (
    REBUILD,
    ROLLUP_SCHEMA,
    SCHEMA,
    SCHEMA_VERSION,
    SUM_BELOW,
    WEATHER_ADDED_COLUMNS,
    WEATHER_COLUMNS,
)

SLOT_S = rollup.SLOT_S


class SqliteStore:
    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        """`synchronous` FULL makes every commit durable (ingest acks only what survives a power
        cut); NORMAL survives a crash of the process, not of the machine (bulk loads, benches)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._queries = SqliteQueries(self._select)
        with self._write_lock:
            conn = self._conn()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.executescript(SCHEMA + ROLLUP_SCHEMA)
            _add_missing_columns(conn, "weather", WEATHER_ADDED_COLUMNS)
            if version < SCHEMA_VERSION:
                # A store written before the rollups existed: derive them once from the raw facts.
                conn.executescript(f"BEGIN IMMEDIATE; {REBUILD} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

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

    def _select(self, sql: str, args: Sequence[object]) -> list[Any]:
        """The rows of one SELECT on the calling thread's connection."""
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"the store {self.path} refused a query: {exc}") from exc

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
                    detected_at = timeutil.now_jst()
                    for batch, outcome in zip(batches, outcomes, strict=True):
                        if batch.energy:
                            hours |= self._write_energy(conn, batch.gateway_id, batch.energy, outcome, detected_at)
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
        self, conn: sqlite3.Connection, gateway_id: str, energy: Sequence[EnergyReading], outcome: WriteOutcome,
        detected_at: datetime,
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
            self._derive_slot(conn, gateway_id, slot_end, outcome, detected_at)
        outcome.slots_written = len(energy)
        return {(gateway_id, rollup.hour_of_slot(slot_end)) for slot_end in touched}

    def _derive_slot(
        self, conn: sqlite3.Connection, gateway_id: str, slot_end: int, outcome: WriteOutcome, detected_at: datetime
    ) -> None:
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
            bought, sold, found = derive_slot((previous[1], previous[2]), (current[1], current[2]),
                                              current[3] or previous[3])
            for anomaly in anomalies_of_slot(gateway_id, timeutil.from_epoch(slot_end), found, detected_at):
                self._record_anomaly(conn, anomaly, outcome)
        conn.execute(
            "UPDATE energy_slot SET bought_kwh = ?, sold_kwh = ? WHERE gateway_id = ? AND slot_end = ?",
            (bought, sold, gateway_id, slot_end),
        )

    @staticmethod
    def _record_anomaly(conn: sqlite3.Connection, anomaly: RegisterAnomaly, outcome: WriteOutcome) -> None:
        """Keep the first detection of a (gateway, slot, register) anomaly; only a new one is reported."""
        inserted = conn.execute(
            "INSERT OR IGNORE INTO register_anomaly VALUES (?, ?, ?, ?, ?, ?, ?)",
            (anomaly.gateway_id, timeutil.to_epoch(anomaly.slot_end), anomaly.direction, anomaly.previous_kwh,
             anomaly.current_kwh, anomaly.reason, to_micros(anomaly.detected_at)),
        ).rowcount
        if inserted:
            outcome.register_anomalies.append(describe(anomaly))

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
            self._recompute(conn, "energy_day", gw, day, query=SUM_BELOW.format(table="energy_hour"),
                            args=(gw, day, day + rollup.DAY_S))
            months.add((gw, rollup.month_start(day)))
        for gw, month in months:
            self._recompute(conn, "energy_month", gw, month, query=SUM_BELOW.format(table="energy_day"),
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
                    f"INSERT OR REPLACE INTO weather (service_code, {', '.join(WEATHER_COLUMNS)})"  # noqa: S608
                    f" VALUES ({', '.join('?' * (len(WEATHER_COLUMNS) + 1))})",
                    [
                        (w.service_code, timeutil.to_epoch(w.observed_at), w.ghi_w_m2, w.temperature_c, w.source,
                         w.dni_w_m2, w.dhi_w_m2, w.gti_w_m2, w.cloud_cover_pct, w.weather_code, w.model,
                         None if w.stale is None else int(w.stale))
                        for w in weather
                    ],
                )
            except sqlite3.Error as exc:
                raise StoreError(f"the store {self.path} refused weather: {exc}") from exc

    def write_expected(self, expected: Sequence[ExpectedYield]) -> None:
        with self._write_lock:
            conn = self._conn()
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO expected_energy VALUES (?, ?, ?, ?, ?)",
                    [(e.service_code, timeutil.to_epoch(s.slot_end), s.expected_kwh, s.source,
                      timeutil.to_epoch(e.computed_at)) for e in expected for s in e.slots],
                )
            except sqlite3.Error as exc:
                raise StoreError(f"the store {self.path} refused expected energy: {exc}") from exc

    # --- queries: SqliteQueries runs them through _select -----------------------------------------

    def latest_power(self, gateway_ids: Iterable[str]) -> dict[str, LatestPower]:
        return self._queries.latest_power(gateway_ids)

    def sold_kwh_between(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, float]:
        return self._queries.sold_kwh_between(gateway_ids, start, end)

    def power_series(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> list[PowerPoint]:
        return self._queries.power_series(gateway_ids, start, end)

    def energy_series(
        self, gateway_ids: Iterable[str], start: datetime, end: datetime, interval: EnergyInterval
    ) -> list[EnergyPoint]:
        return self._queries.energy_series(gateway_ids, start, end, interval)

    def daily_peaks(self, gateway_ids: Iterable[str], first_day: date, last_day: date) -> list[DailyPeak]:
        return self._queries.daily_peaks(gateway_ids, first_day, last_day)

    def total_sold_kwh(self, gateway_ids: Iterable[str]) -> dict[str, float]:
        return self._queries.total_sold_kwh(gateway_ids)

    def latest_weather(self, service_code: str) -> Weather | None:
        return self._queries.latest_weather(service_code)

    def weather_series(self, service_code: str, start: datetime, end: datetime) -> list[Weather]:
        return self._queries.weather_series(service_code, start, end)

    def register_anomalies(self, since: datetime, limit: int) -> list[RegisterAnomaly]:
        return self._queries.register_anomalies(since, limit)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _add_missing_columns(conn: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """Nullable columns a store written by an older version lacks, added in place (no rewrite)."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    for name, sql_type in columns.items():
        if name not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")
