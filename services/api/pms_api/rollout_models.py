"""Request and response models of the rollout API (/api/v1/rollouts)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pms_common.topics import GATEWAY_ID_PATTERN

SHA256 = r"^[0-9a-f]{64}$"


class TargetIn(BaseModel):
    """Exactly one of: every gateway of a customer's plants, the gateways with a tag, or a list."""

    model_config = ConfigDict(extra="forbid")

    customer: str | None = Field(default=None, min_length=1, max_length=32)
    tag: str | None = Field(default=None, min_length=1, max_length=64)
    gateways: list[str] | None = Field(default=None, min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _exactly_one(self) -> TargetIn:
        given = [name for name in ("customer", "tag", "gateways") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("target must name exactly one of customer, tag or gateways")
        return self

    def as_dict(self) -> dict[str, object]:
        return self.model_dump(exclude_none=True)


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(pattern=SHA256, description="the sha256 of an uploaded image (POST /api/v1/firmware)")
    target: TargetIn
    groups: list[float] = Field(
        default=[1, 10, 100], min_length=1, max_length=20,
        description="cumulative percents of the target, each above the one before: [1, 10, 100] = a 1 % "
                    "canary, then up to 10 %, then the rest (the last group always takes the rest)")
    success_threshold: float = Field(default=0.95, ge=0, le=1,
                                     description="share of a group that must have committed (health check "
                                                 "passed) before the next group starts")
    error_threshold: float = Field(default=0.05, ge=0, le=1,
                                   description="share of the started groups failed, rolled back or expired at "
                                               "which the rollout pauses (or aborts)")
    error_action: Literal["pause", "abort"] = "pause"
    min_group_size: int = Field(default=5, ge=1, description="members of a group that must have finished before "
                                                             "either threshold applies (a smaller group: all)")
    deadline_s: float = Field(default=3600, gt=0, le=30 * 86400,
                              description="per gateway and per state, the wait for a job sent to an offline "
                                          "gateway included; then the gateway ends expired")
    health_timeout_s: float = Field(default=300, gt=0, le=86400,
                                    description="how long the gateway's health check may take after its restart")
    window: Literal["any", "after_sunset"] = Field(
        default="any", description="after_sunset: a gateway gets its job only between its plant's sunset and "
                                   "sunrise (a plant without a position: Tokyo's)")

    @model_validator(mode="after")
    def _groups_grow(self) -> RolloutIn:
        previous = 0.0
        for size in self.groups:
            if not 0 < size <= 100 or size <= previous:
                raise ValueError("groups must be cumulative percents of the target, each above the one before "
                                 "it, in (0, 100]")
            previous = size
        return self


class RolloutPath(BaseModel):
    rollout_id: str = Field(pattern=r"^[a-z]{2}-[0-9a-f]{8}$")


class RolloutQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)


class StateChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=400)


class RolloutGroupOut(BaseModel):
    group_index: int = Field(description="0 = the first group")
    total: int
    started: bool
    counts: dict[str, int] = Field(description="its members by state")


class RolloutGatewayOut(BaseModel):
    gateway_id: str = Field(pattern=rf"^{GATEWAY_ID_PATTERN}$")
    group_index: int
    state: str = Field(description="pending (not sent), waiting_window (for its plant's sunset), queued (sent, "
                                   "not started), downloading ... checking_health, committed, rolled_back, "
                                   "failed, expired, cancelled")
    reason: str | None
    from_version: str | None
    version: str | None = Field(description="what it runs now, as last reported")
    job_id: str
    sent_at: datetime | None
    state_since: datetime
    deadline_at: datetime | None


class RolloutOut(BaseModel):
    rollout_id: str
    image: str
    version: str
    target: dict[str, object]
    groups: list[float]
    success_threshold: float
    error_threshold: float
    error_action: str
    min_group_size: int
    deadline_s: float
    health_timeout_s: float
    window: str
    state: Literal["running", "paused", "cancelled", "aborted", "completed"]
    state_reason: str | None
    current_group: int
    errors_accepted: int = Field(description="members in error that a resume accepted")
    created_at: datetime
    created_by: str
    updated_at: datetime
    total: int = Field(description="gateways in the rollout")
    counts: dict[str, int] = Field(description="its gateways by state")
    group_progress: list[RolloutGroupOut]


class RolloutDetail(RolloutOut):
    gateways: list[RolloutGatewayOut] = Field(description="every member, group by group")


class RolloutList(BaseModel):
    items: list[RolloutOut]
