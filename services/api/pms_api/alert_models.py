"""Request and response models of the alerting API: rules, alert episodes, notification channels and
dead-lettered deliveries (/api/v1/alert-rules, /alerts, /channels, /deliveries)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pms_api.models import Page, PageQuery

RULE_KINDS = ("gateway_offline", "meter_unreachable", "no_generation", "yield_below_expected", "data_gap",
              "register_anomaly", "meter_clock_skew", "meter_scale_invalid", "update_failed",
              "billing_start_decided", "meter_history_conflict")
RuleKind = Literal["gateway_offline", "meter_unreachable", "no_generation", "yield_below_expected", "data_gap",
                   "register_anomaly", "meter_clock_skew", "meter_scale_invalid", "update_failed",
                   "billing_start_decided", "meter_history_conflict"]
Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")
OverrideScope = Literal["customer", "tag", "plant"]
AlertState = Literal["pending", "firing", "resolved"]
ChannelKind = Literal["webhook", "email"]
Language = Literal["ja", "en"]

MAX_DURATION_S = 30 * 86400  # a month: a rule that waits longer than that is a mistake
# One address, as mail servers take it: no spaces, one @, a dotted domain (no IDN or quoted forms).
EMAIL_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                           r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def webhook_url(url: str) -> str:
    """`url` when a webhook may be sent there: http or https, a host, no credentials in it (they would
    sit in the registry and in logs; the receiver checks our signature instead)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("the webhook URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the webhook URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the webhook URL must not hold credentials (user:password@): the receiver checks "
                         "the HMAC signature instead")
    try:
        parts.port  # noqa: B018  # raises for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"the webhook URL's port is not valid ({exc})") from exc
    return url


def email_addresses(addresses: list[str]) -> list[str]:
    cleaned = [address.strip() for address in addresses]
    for address in cleaned:
        if len(address) > 254 or not EMAIL_ADDRESS.match(address):
            raise ValueError(f"'{address}' is not an e-mail address (name@example.jp)")
    if len(set(cleaned)) != len(cleaned):
        raise ValueError("an address is listed twice")
    return cleaned


# ---- rules -------------------------------------------------------------------------------------------
class AlertRuleIn(BaseModel):
    """An override of a kind's global default, for a customer, a gateway tag or a plant (the most
    specific wins: plant > tag > customer > global)."""

    model_config = ConfigDict(extra="forbid")

    kind: RuleKind
    scope: OverrideScope = Field(description="the global default of each kind exists already: edit it with PUT")
    scope_value: str = Field(min_length=1, max_length=64,
                             description="the customer id, the gateway tag or the plant's service code")
    enabled: bool = True
    severity: Severity
    raise_for_s: int = Field(ge=0, le=MAX_DURATION_S,
                             description="how long the raise condition must hold before the alert fires")
    clear_for_s: int = Field(ge=0, le=MAX_DURATION_S,
                             description="how long the clear condition must hold before the alert resolves")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="kind-specific settings, e.g. no_generation {\"irradiance_w_m2\": 350}")


class AlertRuleUpdate(BaseModel):
    """The fields to change; the kind and the scope of a rule never change (delete it and add another)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    severity: Severity | None = None
    raise_for_s: int | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    clear_for_s: int | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    params: dict[str, Any] | None = Field(default=None, description="replaces the rule's params as a whole")

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class AlertRuleOut(BaseModel):
    rule_id: int
    kind: str
    scope: Literal["global", "customer", "tag", "plant"]
    scope_value: str | None
    enabled: bool
    severity: str
    raise_for_s: int
    clear_for_s: int
    params: dict[str, Any]
    updated_at: datetime
    updated_by: str | None


class AlertRuleList(BaseModel):
    items: list[AlertRuleOut]


class AlertRuleQuery(BaseModel):
    kind: RuleKind | None = None


class AlertRulePath(BaseModel):
    rule_id: int = Field(ge=1, le=2**31 - 1)


# ---- alerts ------------------------------------------------------------------------------------------
class AlertOut(BaseModel):
    alert_id: int
    kind: str
    subject: str = Field(description="the plant's service code, or gateway:<id> for a gateway bound to no plant")
    service_code: str | None
    gateway_id: str | None
    rule_id: int | None
    severity: str
    state: str
    text: str = Field(description="what happened, in English (the console shows it in the reader's language)")
    pending_since: datetime | None
    firing_since: datetime | None
    resolved_at: datetime | None
    flapping: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    ack_comment: str | None
    event_id: int | None
    params: dict[str, Any]
    updated_at: datetime | None


class AlertPage(Page):
    items: list[AlertOut]


class AlertQuery(PageQuery):
    state: AlertState | Literal["open"] | None = Field(
        default=None, description="pending, firing, resolved, or open (pending or firing)")
    kind: RuleKind | None = None
    service_code: str | None = Field(default=None, pattern=r"^pss\d{8}$")


class AlertPath(BaseModel):
    alert_id: int = Field(ge=1, le=2**31 - 1)


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str = Field(default="", max_length=1000, description="what is being done about it")


# ---- channels ----------------------------------------------------------------------------------------
class ChannelSettings(BaseModel):
    """Fields of a channel both a new one and a change carry."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    language: Language | None = None
    min_severity: Severity | None = Field(default=None, description="alerts below this severity are not sent")
    url: str | None = Field(default=None, max_length=2000, description="webhook: where the JSON body is posted")
    to: list[str] | None = Field(default=None, min_length=1, max_length=50, description="e-mail: the recipients")
    group_wait_s: int | None = Field(default=None, ge=0, le=3600,
                                     description="how long the first happening waits for others to group with")
    group_interval_s: int | None = Field(default=None, ge=0, le=86400,
                                         description="at most one grouped notification per this many seconds")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return None if url is None else webhook_url(url)

    @field_validator("to")
    @classmethod
    def _to(cls, to: list[str] | None) -> list[str] | None:
        return None if to is None else email_addresses(to)


class ChannelIn(ChannelSettings):
    kind: ChannelKind
    name: str = Field(min_length=1, max_length=100)
    customer_id: str | None = Field(default=None, min_length=1, max_length=32,
                                    description="admin keys: whose plants' alerts (omitted: every customer's); "
                                                "a customer key's channels are always its own")

    @model_validator(mode="after")
    def _config_of_kind(self) -> ChannelIn:
        if self.kind == "webhook" and (self.url is None or self.to is not None):
            raise ValueError("a webhook channel needs url (and no to)")
        if self.kind == "email" and (self.to is None or self.url is not None):
            raise ValueError("an e-mail channel needs to (a list of addresses, and no url)")
        return self


class ChannelUpdate(ChannelSettings):
    name: str | None = Field(default=None, min_length=1, max_length=100)

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ChannelOut(BaseModel):
    channel_id: int
    customer_id: str | None
    kind: str
    name: str
    enabled: bool
    language: str
    min_severity: str
    url: str | None
    to: list[str] | None
    secret_hint: str | None = Field(description="webhook: the last characters of the current signing secret")
    previous_secret_valid: bool = Field(description="webhook: the secret before the last rotation still signs "
                                                    "(receivers accept either until the next rotation)")
    group_wait_s: int
    group_interval_s: int
    created_at: datetime
    updated_at: datetime


class NewChannelSecret(ChannelOut):
    secret: str = Field(description="the webhook's signing secret, shown this once (on create and rotate)")


class ChannelList(BaseModel):
    items: list[ChannelOut]


class ChannelPath(BaseModel):
    channel_id: int = Field(ge=1, le=2**31 - 1)


# ---- deliveries --------------------------------------------------------------------------------------
class DeliveryOut(BaseModel):
    delivery_id: int
    channel_id: int
    channel_name: str | None
    channel_kind: str | None
    customer_id: str | None = Field(description="the channel's customer; null for the operator's own channels")
    happenings: int = Field(description="how many raises, clears and acknowledgements it carries (grouped)")
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    delivered_at: datetime | None


class DeliveryPage(Page):
    items: list[DeliveryOut]


class DeliveryQuery(PageQuery):
    state: Literal["pending", "delivered", "dead"] | None = None


class DeliveryPath(BaseModel):
    delivery_id: int = Field(ge=1, le=2**31 - 1)  # an INTEGER key on PostgreSQL too
