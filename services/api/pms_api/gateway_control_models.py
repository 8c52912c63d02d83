"""Request and response models of gateway control: config push, tags and groups, commands, the audit log.

The bounds of each setting are the collector's own (pms_common.messages), so what the API accepts a
gateway applies as sent; a request outside them is refused with the field named.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from echonet import smart_meter as sm
from pms_api.models import Page, PageQuery
from pms_common.messages import (
    ENERGY_INTERVAL_LIMITS_S,
    HEARTBEAT_INTERVAL_LIMITS_S,
    POWER_INTERVAL_LIMITS_S,
    CommandName,
    LogLevel,
)
from pms_common.topics import GATEWAY_ID_PATTERN

TAG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# A tag, or `customer:` and a customer ID.
GROUP_PATTERN = r"^([a-z0-9][a-z0-9._-]{0,63}|customer:[A-Za-z0-9_-]{1,32})$"
MAX_COMMAND_TIMEOUT_S = 3600
CommandState = Literal["queued", "sent", "succeeded", "failed", "expired"]


def _interval(limits: tuple[float, float], what: str) -> Any:
    return Field(default=None, ge=limits[0], le=limits[1],
                 description=f"{what}, seconds ({limits[0]:g} to {limits[1]:g}); omitted: keep the current one")


# ---- configuration ---------------------------------------------------------------------------------
class ConfigIn(BaseModel):
    """Settings to change; those left out keep their desired value (or, before any push, what the
    gateway reports, or the collector's default)."""

    model_config = ConfigDict(extra="forbid")

    power_interval_s: float | None = _interval(POWER_INTERVAL_LIMITS_S, "instantaneous power (E7/E8) read interval")
    heartbeat_interval_s: float | None = _interval(HEARTBEAT_INTERVAL_LIMITS_S, "heartbeat interval")
    energy_interval_s: float | None = _interval(ENERGY_INTERVAL_LIMITS_S, "cumulative register (E0/E3) read interval")
    log_level: LogLevel | None = Field(default=None, description="the collector's log level")

    @model_validator(mode="after")
    def _something_to_change(self) -> ConfigIn:
        if not self.changes():
            raise ValueError("name at least one of power_interval_s, heartbeat_interval_s, energy_interval_s, "
                             "log_level")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ConfigDocument(BaseModel):
    power_interval_s: float | None = None
    heartbeat_interval_s: float | None = None
    energy_interval_s: float | None = Field(default=None, description="null: a gateway from before contract 1.2")
    log_level: str | None = None


class DesiredConfigOut(BaseModel):
    version: int
    document: ConfigDocument
    updated_at: datetime
    updated_by: str
    published: bool = Field(description="device-manager has published this version (retained)")


class ReportedConfigOut(BaseModel):
    version: int
    document: ConfigDocument
    reported_at: datetime


class GatewayConfigOut(BaseModel):
    gateway_id: str
    desired: DesiredConfigOut | None = Field(description="null: no configuration was ever pushed")
    reported: ReportedConfigOut | None = Field(description="null: the gateway has not reported since")
    drift: bool = Field(description="a desired version the gateway has not reported running (yet)")


class GroupConfigOut(BaseModel):
    group: str
    gateways: int = Field(description="how many gateways got a new desired version")
    audit_id: int


class TagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[Annotated[str, Field(pattern=TAG_PATTERN)]] = Field(max_length=50, description="replaces every tag")


class TagsOut(BaseModel):
    gateway_id: str
    tags: list[str]


class GroupMember(BaseModel):
    gateway_id: str
    desired_version: int | None
    reported_version: int | None
    drift: bool


class GroupOut(BaseModel):
    group: str
    members: list[GroupMember]
    total: int
    drifting: int = Field(description="members with a desired version they do not report (yet)")
    in_sync: int = Field(description="members that report their desired version")
    no_desired: int = Field(description="members no configuration was pushed to")


# ---- commands ----------------------------------------------------------------------------------------
class CommandIn(BaseModel):
    """`args`: read_property {"epc": "E7"}; backfill {"days": N} or {"from": time, "to": time}; rejoin and
    restart_link none."""

    model_config = ConfigDict(extra="forbid")

    command: CommandName
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: int = Field(default=30, ge=1, le=MAX_COMMAND_TIMEOUT_S,
                           description="the command's deadline, from now: queued (gateway offline) or unanswered "
                                       "until then, it expires")

    @model_validator(mode="after")
    def _args_fit_the_command(self) -> CommandIn:
        args = self.args
        if self.command in ("rejoin", "restart_link"):
            if args:
                raise ValueError(f"{self.command} takes no args")
        elif self.command == "read_property":
            epc_text = str(args.get("epc", ""))
            if set(args) != {"epc"}:
                raise ValueError('read_property takes {"epc": "E7"} (a hex EPC) and nothing else')
            try:
                epc = int(epc_text.removeprefix("0x"), 16)
            except ValueError:
                raise ValueError(f"read_property's epc must be a hex EPC such as E7, not {epc_text!r}") from None
            if epc not in sm.PROPERTIES:
                raise ValueError(f"EPC {epc_text} is not a property of the smart meter class 0x0288")
        elif self.command == "backfill":
            _check_backfill(args)
        return self


def _check_backfill(args: dict[str, Any]) -> None:
    if set(args) == {"days"}:
        days = args["days"]
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= sm.HISTORY_MAX_DAY:
            raise ValueError(f"backfill's days must be a whole number from 1 to {sm.HISTORY_MAX_DAY}, not {days!r}")
        return
    if "from" not in args or not set(args) <= {"from", "to"}:
        raise ValueError('backfill takes {"days": N} or {"from": time, "to": time}')
    moments = {}
    for key in ("from", "to"):
        if key in args:
            try:
                moments[key] = datetime.fromisoformat(str(args[key]))
            except ValueError:
                raise ValueError(f"backfill's {key} must be an ISO 8601 time, not {args[key]!r}") from None
            if moments[key].tzinfo is None:
                raise ValueError(f"backfill's {key} needs its UTC offset (e.g. +09:00)")
    if "to" in moments and moments["to"] <= moments["from"]:
        raise ValueError("backfill's to must come after its from")


class CommandOut(BaseModel):
    command_id: str
    gateway_id: str
    command: str
    args: dict[str, Any]
    state: CommandState
    requested_by: str
    created_at: datetime
    deadline: datetime
    sent_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None = Field(description="what the gateway answered, when it succeeded")
    reason: str | None = Field(description="why it failed or expired, in a sentence")


class CommandPage(Page):
    items: list[CommandOut]


class CommandPath(BaseModel):
    gateway_id: str = Field(pattern=rf"^{GATEWAY_ID_PATTERN}$")
    command_id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class GroupPath(BaseModel):
    group: str = Field(pattern=GROUP_PATTERN, description="a tag, or customer:{customer_id}")


# ---- audit log ---------------------------------------------------------------------------------------
class AuditOut(BaseModel):
    audit_id: int
    at: datetime
    actor: str = Field(description="who asked: key:{API key label} or user:{username}")
    action: str
    target: str
    detail: dict[str, Any]
    outcome: str = Field(description="pending until it ends, then what came of it")


class AuditPage(Page):
    items: list[AuditOut]


class AuditQuery(PageQuery):
    target: str | None = Field(default=None, max_length=200, description="a gateway ID, group:{group} or a rollout ID")
    action: Literal["command", "config", "group_config", "tags", "bind", "decommission", "firmware_upload",
                    "rollout_create", "rollout_pause", "rollout_resume", "rollout_cancel",
                    "rollout_abort", "alert_rule_create", "alert_rule_update", "alert_rule_delete",
                    "alert_acknowledge", "channel_create", "channel_update", "channel_rotate_secret",
                    "channel_delete", "delivery_retry"] | None = None
