"""The store interface that ingest writes through and the API and alerts read through."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pms_common.errors import PmsError
from pms_common.messages import EnergyReading, PowerReading, Weather


class StoreError(PmsError):
    """The store cannot be reached or refused a write or query."""


@dataclass(frozen=True)
class LatestPower:
    gateway_id: str
    measured_at: datetime
    power_w: int

    @property
    def sold_power_w(self) -> int:
        return max(0, -self.power_w)


@dataclass
class WriteOutcome:
    """What a write changed: counts, and register anomalies that deserve an event."""

    power_written: int = 0
    slots_written: int = 0
    register_anomalies: list[str] = field(default_factory=list)


class TimeSeriesStore(Protocol):
    def write_readings(
        self, gateway_id: str, power: Sequence[PowerReading], energy: Sequence[EnergyReading]
    ) -> WriteOutcome:
        """Store idempotently: the same reading written twice is stored once. Durable on return."""

    def write_weather(self, weather: Sequence[Weather]) -> None: ...

    def latest_power(self, gateway_ids: Iterable[str]) -> dict[str, LatestPower]: ...

    def sold_kwh_between(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, float]:
        """Sold energy of the slots ending in (start, end], per gateway (gateways with none: 0)."""

    def latest_weather(self, service_code: str) -> Weather | None: ...

    def close(self) -> None: ...


def open_store(url: str) -> TimeSeriesStore:
    """Open the store a `PMS_TSDB_URL` names: `sqlite:///path` or `influxdb://[user:pass@]host:port/db`."""
    if url.startswith("sqlite:///"):
        from pms_store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("influxdb://", "influxdbs://")):
        from pms_store.influx import InfluxStore

        return InfluxStore.from_url(url)
    raise StoreError(f"time-series store URL {url!r} must start with sqlite:/// or influxdb://")
