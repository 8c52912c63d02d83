"""The SQLite store's tables, and the SQL that derives the rollups from the raw facts.

Every statement is `IF NOT EXISTS`, run on every open: a store created by an older version gets the
tables it lacks (e.g. `register_anomaly`) the next time it is opened.
"""

from __future__ import annotations

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
-- A plant's expected energy per slot (ExpectedYield, from the weather service); the last written stands.
CREATE TABLE IF NOT EXISTS expected_energy (
    service_code TEXT NOT NULL,
    slot_end INTEGER NOT NULL,
    expected_kwh REAL NOT NULL,
    source TEXT NOT NULL,
    computed_at INTEGER NOT NULL,
    PRIMARY KEY (service_code, slot_end)
) WITHOUT ROWID;
-- One row per register anomaly; the key makes a resend or backfill overlap store nothing new.
CREATE TABLE IF NOT EXISTS register_anomaly (
    gateway_id TEXT NOT NULL,
    slot_end INTEGER NOT NULL,
    direction TEXT NOT NULL,
    previous_kwh REAL NOT NULL,
    current_kwh REAL NOT NULL,
    reason TEXT NOT NULL,
    detected_at_us INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, slot_end, direction)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS register_anomaly_by_detection ON register_anomaly (detected_at_us);
"""

# Weather columns added after the table was first shipped (Weather 1.3.0: real providers), nullable,
# added by ALTER TABLE on open to a store that lacks them, so every store has them whatever its age.
WEATHER_ADDED_COLUMNS = {
    "dni_w_m2": "REAL",
    "dhi_w_m2": "REAL",
    "gti_w_m2": "REAL",
    "cloud_cover_pct": "REAL",
    "weather_code": "INTEGER",
    "model": "TEXT",
    "stale": "INTEGER",
}
WEATHER_COLUMNS = ("observed_at", "ghi_w_m2", "temperature_c", "source", *WEATHER_ADDED_COLUMNS)

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
REBUILD = """DELETE FROM energy_hour; DELETE FROM energy_day; DELETE FROM energy_month; DELETE FROM power_day_peak;
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

# A day or month row from the rows of the level below.
SUM_BELOW = (
    "SELECT round(sum(sold_kwh), 6), round(sum(bought_kwh), 6), sum(slots), sum(backfilled_slots)"
    " FROM {table} WHERE gateway_id = ? AND period_start >= ? AND period_start < ?"
)
