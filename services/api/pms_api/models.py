"""Response and request models of the REST API (they become the OpenAPI 3.1 document)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

PlantStatus = Literal["normal", "not_measured", "offline", "no_gateway"]


class PlantSummary(BaseModel):
    service_code: str = Field(pattern=r"^pss\d{8}$")
    customer_id: str
    name: str
    address: str
    phone: str
    current_sold_w: int | None = Field(description="sold power now (W, ≥ 0); null = not measured")
    measured_at: datetime | None
    today_sold_kwh: float = Field(description="sold energy today, Japan time; 0 with no data")
    status: PlantStatus


class PlantDetail(PlantSummary):
    latitude: float | None
    longitude: float | None
    capacity_kw: float | None
    tariff_yen_per_kwh: float | None
    billing_start_date: str | None
    gateway_ids: list[str]


class Page(BaseModel):
    total: int
    limit: int
    offset: int


class PlantPage(Page):
    items: list[PlantSummary]


class GatewayOut(BaseModel):
    gateway_id: str
    service_code: str | None
    status: str
    status_changed_at: datetime | None
    last_seen_at: datetime | None
    power_interval_s: float
    heartbeat: dict[str, object] | None


class GatewayPage(Page):
    items: list[GatewayOut]


class EventOut(BaseModel):
    event_id: int
    kind: str
    state: str
    gateway_id: str | None
    service_code: str | None
    opened_at: datetime
    recovered_at: datetime | None
    message: str


class EventPage(Page):
    items: list[EventOut]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


class PageQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


class EventQuery(PageQuery):
    state: Literal["open", "recovered", "info"] | None = None


class PlantPath(BaseModel):
    service_code: str = Field(pattern=r"^pss\d{8}$")
