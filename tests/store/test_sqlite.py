"""What only the SQLite store has: its rollup tables, rebuilt for a file written before they existed."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
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


def test_a_store_written_before_weather_1_3_gets_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "ts.db"
    with sqlite3.connect(path) as conn:  # the weather table as the first release shipped it
        conn.execute(
            "CREATE TABLE weather (service_code TEXT NOT NULL, observed_at INTEGER NOT NULL,"
            " ghi_w_m2 REAL NOT NULL, temperature_c REAL, source TEXT NOT NULL,"
            " PRIMARY KEY (service_code, observed_at)) WITHOUT ROWID"
        )
        conn.execute("INSERT INTO weather VALUES ('pss00000001', ?, 512.5, NULL, 'clear-sky')", [int(T0.timestamp())])
    store = SqliteStore(path)
    old = store.latest_weather("pss00000001")
    assert old == Weather(service_code="pss00000001", observed_at=T0, ghi_w_m2=512.5, source="clear-sky")
    new = Weather(service_code="pss00000001", observed_at=T0 + timeutil.SLOT, ghi_w_m2=600.0, temperature_c=21.5,
                  source="open-meteo", dni_w_m2=700.0, dhi_w_m2=120.0, gti_w_m2=650.0, cloud_cover_pct=12.0,
                  weather_code=1, model="best_match", stale=False)
    store.write_weather([new])
    assert store.weather_series("pss00000001", T0, T0 + timeutil.SLOT * 2) == [old, new]
    store.close()
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(weather)")]
    assert columns[5:] == ["dni_w_m2", "dhi_w_m2", "gti_w_m2", "cloud_cover_pct", "weather_code", "model", "stale"]
    SqliteStore(path).close()  # opening again adds nothing twice
