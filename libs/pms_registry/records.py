"""What the registry hands out: small frozen records, never rows or connections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str


@dataclass(frozen=True)
class Plant:
    service_code: str
    customer_id: str
    name: str
    address: str
    phone: str
    latitude: float | None
    longitude: float | None
    capacity_kw: float | None
    tariff_yen_per_kwh: float | None
    billing_start_date: date | None
    gateway_ids: tuple[str, ...]


@dataclass(frozen=True)
class Gateway:
    gateway_id: str
    service_code: str | None
    status: str
    status_changed_at: datetime | None
    last_seen_at: datetime | None
    power_interval_s: float
    heartbeat: dict[str, Any] | None


@dataclass(frozen=True)
class EventRecord:
    event_id: int
    kind: str
    state: str
    gateway_id: str | None
    service_code: str | None
    opened_at: datetime
    recovered_at: datetime | None
    message: str


@dataclass(frozen=True)
class Notice:
    """A maintenance or outage notice for the home screen; customer_id None = for everyone."""

    notice_id: int
    kind: str
    title: str
    body: str
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    customer_id: str | None


@dataclass(frozen=True)
class User:
    """A console login: an admin (customer_id None) or one customer's user."""

    user_id: int
    username: str
    customer_id: str | None
    language: str

    @property
    def is_admin(self) -> bool:
        return self.customer_id is None


@dataclass(frozen=True)
class ApiKey:
    """An API key's record; its secret is never stored."""

    key_id: str
    label: str
    customer_id: str | None
    created_at: datetime
    revoked: bool


@dataclass(frozen=True)
class Principal:
    """Who a request speaks for: an admin (customer_id None) or one customer."""

    key_id: str
    customer_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.customer_id is None
