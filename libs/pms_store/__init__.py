"""The time-series store: one narrow interface, implemented on SQLite (embedded) and InfluxDB."""

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
    TimeSeriesStore,
    WriteOutcome,
)
from pms_store.open import open_store

__all__ = [
    "DailyPeak",
    "EnergyInterval",
    "EnergyPoint",
    "GatewayReadings",
    "LatestPower",
    "PowerPoint",
    "RegisterAnomaly",
    "StoreError",
    "StoreRefused",
    "TimeSeriesStore",
    "WriteOutcome",
    "open_store",
]
