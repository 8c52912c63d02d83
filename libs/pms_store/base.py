"""The store contract: the interface ingest writes through and the API and alerts read through, and
the values and errors it speaks in.

    PmsError (pms_common.errors)   a failure the operator can act on
    └── StoreError                 the store cannot be reached, or refused a write or a query
        └── StoreRefused           it refused this very data: sending the same data again fails again

The stores translate their drivers' errors (sqlite3, httpx) into these at their boundary, the cause
chained.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol

from pms_common.errors import PmsError
from pms_common.messages import EnergyReading, ExpectedYield, PowerReading, Weather


class StoreError(PmsError):
    """The store cannot be reached or refused a write or query."""


class StoreRefused(StoreError):
    """The store answered and refused this very data (a malformed point, a field type conflict, a
    request too large): writing the same data again fails again, while other data may succeed."""


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
    """What a write changed: counts, and the register anomalies it found and stored for the first
    time (as text for the log; a resend of the same readings reports none)."""

    power_written: int = 0
    slots_written: int = 0
    register_anomalies: list[str] = field(default_factory=list)


AnomalyDirection = Literal["forward", "reverse"]  # forward = bought energy, reverse = sold
AnomalyReason = Literal["backwards", "jump"]  # see pms_store.energy.slot_delta


@dataclass(frozen=True)
class RegisterAnomaly:
    """A cumulative register that went backwards (meter replaced, a glitch to 0) or jumped by more
    than a slot can hold, found when the slot ending `slot_end` was derived (the slot gets no
    energy). Stored once per (gateway_id, slot_end, direction): the first detection wins, and a
    resend or a backfill overlap of the same slot neither adds nor changes one."""

    gateway_id: str
    slot_end: datetime
    direction: AnomalyDirection
    previous_kwh: float  # the register of the slot before
    current_kwh: float  # the register of this slot
    reason: AnomalyReason
    detected_at: datetime


@dataclass(frozen=True)
class GatewayReadings:
    """One gateway's readings of one batch, as `TimeSeriesStore.write_many` takes them."""

    gateway_id: str
    power: Sequence[PowerReading] = ()
    energy: Sequence[EnergyReading] = ()


EnergyInterval = Literal["30min", "hour", "day", "month"]


@dataclass(frozen=True)
class PowerPoint:
    gateway_id: str
    measured_at: datetime
    power_w: int
    current_r_a: float | None
    current_t_a: float | None

    @property
    def sold_power_w(self) -> int:
        return max(0, -self.power_w)


@dataclass(frozen=True)
class EnergyPoint:
    """Energy of one period for one gateway; periods are JST and named by their start, except
    30-minute slots, which are named by their end (`period_end`) as the meter does.

    A period holds the slots ending in (period_start, period_end]: the slot ending 00:00 closes the
    day (and month) before. `slots` counts the slots of the period with a derived energy (a slot
    needs its own register and the one before it; a register that went backwards derives none) and
    `backfilled` is true when any of them came from history backfill. sold/bought are None when no
    slot of the period has that energy (a meter without the forward register has no bought).
    """

    gateway_id: str
    period_start: datetime
    period_end: datetime
    sold_kwh: float | None
    bought_kwh: float | None
    slots: int
    backfilled: bool


@dataclass(frozen=True)
class DailyPeak:
    """The highest sold power of a JST day and when it was measured."""

    gateway_id: str
    day: date
    peak_sold_w: int
    measured_at: datetime


class TimeSeriesStore(Protocol):
    def write_readings(
        self, gateway_id: str, power: Sequence[PowerReading], energy: Sequence[EnergyReading]
    ) -> WriteOutcome:
        """Store idempotently: the same reading written twice is stored once. Durable on return."""

    def write_many(self, batches: Sequence[GatewayReadings]) -> list[WriteOutcome]:
        """`write_readings` for several batches (of one or many gateways) in one durable step (one
        transaction, one HTTP write): all are stored or, on StoreError, none may be counted on.
        Returns one outcome per batch, in order."""

    def write_weather(self, weather: Sequence[Weather]) -> None: ...

    def write_expected(self, expected: Sequence[ExpectedYield]) -> None:
        """Each slot's expected energy, one value per (plant, slot end): a rewrite replaces it."""

    def latest_power(self, gateway_ids: Iterable[str]) -> dict[str, LatestPower]: ...

    def sold_kwh_between(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> dict[str, float]:
        """Sold energy of the slots ending in (start, end], per gateway (gateways with none: 0)."""

    def latest_weather(self, service_code: str) -> Weather | None: ...

    # ---- queries of the API, the console and alerts ------------------------------------------
    def power_series(self, gateway_ids: Iterable[str], start: datetime, end: datetime) -> list[PowerPoint]:
        """Raw power samples with measured_at in [start, end), ordered by gateway then time."""

    def energy_series(
        self, gateway_ids: Iterable[str], start: datetime, end: datetime, interval: EnergyInterval
    ) -> list[EnergyPoint]:
        """Sold/bought energy per period (JST calendar for hour/day/month) overlapping [start, end),
        ordered by gateway then period; only periods with at least one derived slot are returned.
        Hour, day and month come from rollups kept at write time: a year of months costs no more
        than a day of hours."""

    def daily_peaks(self, gateway_ids: Iterable[str], first_day: date, last_day: date) -> list[DailyPeak]:
        """Per gateway and JST day in [first_day, last_day], the day's peak sold power (days with
        power samples; a day that only bought has peak 0), the earliest sample on a tie."""

    def total_sold_kwh(self, gateway_ids: Iterable[str]) -> dict[str, float]:
        """All sold energy ever stored, per gateway (the home screen's total)."""

    def weather_series(self, service_code: str, start: datetime, end: datetime) -> list[Weather]:
        """Weather observations with observed_at in [start, end), oldest first."""

    def register_anomalies(self, since: datetime, limit: int) -> list[RegisterAnomaly]:
        """Stored register anomalies detected at or after `since`, at most `limit`, ordered by
        detected_at (then gateway, slot, direction)."""

    def close(self) -> None: ...

