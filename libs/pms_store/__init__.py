"""The time-series store: one narrow interface, implemented on SQLite (embedded) and InfluxDB."""

from pms_store.base import LatestPower, StoreError, TimeSeriesStore, WriteOutcome, open_store

__all__ = ["LatestPower", "StoreError", "TimeSeriesStore", "WriteOutcome", "open_store"]
