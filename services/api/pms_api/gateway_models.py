"""Response and query models of the gateway status API (GET /api/v1/gateways[/{id}])."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from pms_api.models import CustomerId, Page, PageQuery

GatewayCondition = Literal["online", "offline", "never_seen", "unbound", "decommissioned"]


class GatewayOut(BaseModel):
    """A gateway's binding, presence and health (the health fields come from its latest heartbeat)."""

    gateway_id: str
    service_code: str | None = Field(description="the plant it serves now; null = unbound")
    plant_name: str | None
    bound_since: datetime | None
    condition: GatewayCondition = Field(
        description="what the home screen counts: only offline is abnormal; never_seen = bound but never "
                    "heard from; decommissioned gateways count nowhere")
    status: str = Field(description="presence as last recorded: online, offline or unknown")
    status_changed_at: datetime | None
    last_seen_at: datetime | None
    decommissioned_at: datetime | None
    power_interval_s: float
    heartbeat_at: datetime | None
    uptime_s: float | None
    firmware: str | None
    module_family: str | None
    rssi_dbm: int | None
    lqi: int | None
    read_errors_total: int | None
    outbox_depth: int | None
    backfill_pending_days: int | None
    backfill_last_failure: str | None
    meter_clock_skew_s: float | None
    meter_scale_problem: str | None
    heartbeat: dict[str, object] | None = Field(description="the latest heartbeat as the gateway sent it")


class GatewayPage(Page):
    items: list[GatewayOut]


class BindingOut(BaseModel):
    service_code: str
    plant_name: str | None = Field(description="null when the plant has been deleted")
    bound_from: datetime
    bound_until: datetime | None = Field(description="null = still bound")


class PresenceOut(BaseModel):
    state: Literal["online", "offline"]
    at: datetime
    reason: str


class GatewayDetail(GatewayOut):
    bindings: list[BindingOut] = Field(description="the plants it served, oldest first")
    presence: list[PresenceOut] = Field(description="its latest online/offline transitions, newest first")


class GatewayQuery(PageQuery):
    status: GatewayCondition | None = Field(default=None, description="only gateways in this condition")
    customer_id: CustomerId | None = Field(default=None, description="only the gateways of this customer's plants")
