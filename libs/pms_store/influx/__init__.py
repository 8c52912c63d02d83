"""The time-series store on InfluxDB (1.x, 2.x and 3.x through the v1-compatible HTTP API)."""

from pms_store.influx.store import InfluxStore

__all__ = ["InfluxStore"]
