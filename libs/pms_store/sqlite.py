"""The embedded time-series store on SQLite (WAL), one file, many reader threads, one writer."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
from pms_store.base import LatestPower, StoreError, WriteOutcome
from pms_store.energy import slot_delta

SLOT_S = int(timeutil.SLOT.total_seconds())

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


class SqliteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        with self._write_lock:
            self._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: ingest acks only what survives a crash, so a commit must reach the disk.
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def write_readings(
        self, gateway_id: str, power: Sequence[PowerReading], energy: Sequence[EnergyReading]
    ) -> WriteOutcome:
        outcome = WriteOutcome()
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                if power:
                    conn.executemany(
                        "INSERT OR IGNORE INTO power VALUES (?, ?, ?, ?, ?)",
                        [
                            (gateway_id, timeutil.to_epoch(p.measured_at), p.power_w, p.current_r_a, p.current_t_a)
                            for p in power
                        ],
                    )
                    newest = max(power, key=lambda p: p.measured_at)
                    conn.execute(
                        "INSERT INTO latest_power VALUES (?, ?, ?) ON CONFLICT(gateway_id) DO UPDATE SET "
                        "measured_at = excluded.measured_at, power_w = excluded.power_w "
                        "WHERE excluded.measured_at > latest_power.measured_at",
                        (gateway_id, timeutil.to_epoch(newest.measured_at), newest.power_w),
                    )
                    outcome.power_written = len(power)
                touched: set[int] = set()
                for reading in energy:
                    slot_end = timeutil.to_epoch(reading.slot_end)
                    conn.execute(
                        "INSERT INTO energy_slot (gateway_id, slot_end, forward_kwh, reverse_kwh, wrap_kwh, backfilled)"
                        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(gateway_id, slot_end) DO UPDATE SET"
                        " forward_kwh = coalesce(excluded.forward_kwh, forward_kwh),"
                        " reverse_kwh = coalesce(excluded.reverse_kwh, reverse_kwh),"
                        " wrap_kwh = coalesce(excluded.wrap_kwh, wrap_kwh),"
                        " backfilled = min(backfilled, excluded.backfilled)",
                        (gateway_id, slot_end, reading.forward_kwh, reading.reverse_kwh,
                         reading.register_wrap_kwh, int(reading.backfilled)),
                    )
                    touched.update((slot_end, slot_end + SLOT_S))
                for slot_end in sorted(touched):
                    self._derive_slot(conn, gateway_id, slot_end, outcome)
                outcome.slots_written = len(energy)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return outcome

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

    def write_weather(self, weather: Sequence[Weather]) -> None:
        with self._write_lock:
            conn = self._conn()
            conn.executemany(
                "INSERT OR REPLACE INTO weather VALUES (?, ?, ?, ?, ?)",
                [
                    (w.service_code, timeutil.to_epoch(w.observed_at), w.ghi_w_m2, w.temperature_c, w.source)
                    for w in weather
                ],
            )

    def latest_power(self, gateway_ids: Iterable[str]) -> dict[str, LatestPower]:
        ids = list(gateway_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._conn().execute(
            f"SELECT gateway_id, measured_at, power_w FROM latest_power WHERE gateway_id IN ({marks})",  # noqa: S608
            ids,
        ).fetchall()
        return {gw: LatestPower(gw, timeutil.from_epoch(t), watts) for gw, t, watts in rows}

    def sold_kwh_between(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, float]:
        ids = list(gateway_ids)
        totals = dict.fromkeys(ids, 0.0)
        if not ids:
            return totals
        marks = ",".join("?" * len(ids))
        rows = self._conn().execute(
            f"SELECT gateway_id, coalesce(sum(sold_kwh), 0) FROM energy_slot"  # noqa: S608
            f" WHERE gateway_id IN ({marks}) AND slot_end > ? AND slot_end <= ? GROUP BY gateway_id",
            [*ids, timeutil.to_epoch(start), timeutil.to_epoch(end)],
        ).fetchall()
        for gw, kwh in rows:
            totals[gw] = round(kwh, 6)
        return totals

    def latest_weather(self, service_code: str) -> Weather | None:
        row = self._conn().execute(
            "SELECT observed_at, ghi_w_m2, temperature_c, source FROM weather WHERE service_code = ?"
            " ORDER BY observed_at DESC LIMIT 1",
            (service_code,),
        ).fetchone()
        if row is None:
            return None
        return Weather(
            service_code=service_code,
            observed_at=timeutil.from_epoch(row[0]),
            ghi_w_m2=row[1],
            temperature_c=row[2],
            source=row[3],
        )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
