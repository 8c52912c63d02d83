"""Opening the time-series store a URL names."""

from __future__ import annotations

from pms_store.base import StoreError, TimeSeriesStore


def open_store(url: str) -> TimeSeriesStore:
    """Open the store a `PMS_TSDB_URL` names: `sqlite:///path` or `influxdb://[user:pass@]host:port/db`."""
    # Each store is imported only when named: the InfluxDB one needs httpx, which not every install has.
    if url.startswith("sqlite:///"):
        from pms_store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("influxdb://", "influxdbs://")):
        from pms_store.influx import InfluxStore

        return InfluxStore.from_url(url)
    raise StoreError(f"time-series store URL {url!r} must start with sqlite:/// or influxdb://")
