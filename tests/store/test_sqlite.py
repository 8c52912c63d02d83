"""What only the SQLite store has: its rollup tables, rebuilt for a file written before they existed."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from pms_store.sqlite import SqliteStore
from pms_store.sqlite.schema import ROLLUP_TABLES

T0 = datetime(2024, 6, 30, 20, tzinfo=timeutil.JST)
DERIVED = [*ROLLUP_TABLES.values(), "power_day_peak"]


def _dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return {table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in DERIVED}


def test_a_store_written_before_the_rollups_gets_them_rebuilt_exactly(tmp_path: Path) -> None:
    path = tmp_path / "ts.db"
    store = SqliteStore(path)
    for gw in ("gw-1", "gw-2"):
        store.write_readings(
            gw,
            [PowerReading(measured_at=T0 + timedelta(minutes=7 * i), power_w=(-1) ** i * 37 * i) for i in range(120)],
            [
                EnergyReading(slot_end=T0 + timeutil.SLOT * i, reverse_kwh=0.3 * i, forward_kwh=0.1 * (i // 2),
                              backfilled=i % 5 == 0)
                for i in range(20)
                if i != 7
            ],
        )
    store.close()
    expected = _dump(path)
    assert all(expected[table] for table in DERIVED)
    assert {row[1] for row in expected["energy_month"]} == {
        timeutil.to_epoch(timeutil.day_start(date(2024, 6, 1))),
        timeutil.to_epoch(timeutil.day_start(date(2024, 7, 1))),
    }

    with sqlite3.connect(path) as conn:
        for table in DERIVED:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version = 0")
    SqliteStore(path).close()
    assert _dump(path) == expected


def test_a_store_written_before_register_anomalies_were_kept_gets_their_table(tmp_path: Path) -> None:
    path = tmp_path / "ts.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE register_anomaly")
    store = SqliteStore(path)
    store.write_readings("gw-1", [], [EnergyReading(slot_end=T0, reverse_kwh=9.0),
                                      EnergyReading(slot_end=T0 + timeutil.SLOT, reverse_kwh=0.0)])
    assert [(a.gateway_id, a.slot_end, a.reason) for a in store.register_anomalies(T0, 10)] == [
        ("gw-1", T0 + timeutil.SLOT, "backwards")
    ]
