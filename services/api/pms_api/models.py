"""Request and response models of the REST API (they become the OpenAPI 3.1 document)."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from pms_common.timeutil import JST
from pms_common.topics import GATEWAY_ID_PATTERN

PlantStatus = Literal["normal", "not_measured", "offline", "no_gateway"]
ServiceCode = Annotated[str, Field(pattern=r"^pss\d{8}$")]
CustomerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
# Series that answer CSV too: the document says so, and schemathesis checks the content type.
CSV_CONTENT = {"text/csv": {"schema": {"type": "string"}}}


def _no_control(value: str) -> str:
    """Text that every database and CSV reader accepts: no control characters, no lone surrogates."""
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn") and char not in "\r\n\t":
            raise ValueError(f"contains the unprintable character U+{ord(char):04X}")
    return value


def _printable(value: str) -> str:
    """A one-line name: no control characters, not blank, no spaces around it."""
    _no_control(value)
    if "\n" in value or value.strip() != value or not value.strip():
        raise ValueError("must be one line, not blank, without spaces around it")
    return value


def _in_service_era(moment: datetime | None) -> datetime | None:
    if moment is not None and not FIRST_DAY.year <= moment.year <= LAST_DAY.year:
        raise ValueError(f"must fall between {FIRST_DAY} and {LAST_DAY}")
    return moment


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
Address = Annotated[str, Field(min_length=1, max_length=400), AfterValidator(_printable)]
Phone = Annotated[str, Field(pattern=r"^[0-9+()\- ]{1,32}$")]
Moment = Annotated[AwareDatetime, AfterValidator(_in_service_era)]
NoticeKind = Literal["maintenance", "outage", "firmware", "info"]
NoticeBody = Annotated[str, Field(max_length=4000), AfterValidator(_no_control)]
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]


# ---- plants ------------------------------------------------------------------------------------------
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
    pr_sold_yesterday: float | None = Field(
        default=None, description="yesterday's performance ratio on SOLD energy: sold ÷ (DC kW × plane-of-array "
        "kWh/m²), a lower bound where the house consumes (see /plants/{code}/expected); null without a location "
        "or data")


class PlantDetail(PlantSummary):
    latitude: float | None
    longitude: float | None
    capacity_kw: float | None
    tariff_yen_per_kwh: float | None
    billing_start_date: str | None
    gateway_ids: list[str]
    retired_at: datetime | None = Field(default=None, description="when the plant was retired (it keeps its data)")


class PlantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    name: Name
    address: Address
    phone: Phone
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    capacity_kw: float | None = Field(default=None, ge=0, le=100_000)
    tariff_yen_per_kwh: float | None = Field(default=None, ge=0, le=1000)


class PlantUpdate(BaseModel):
    """The fields to change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId | None = None
    name: Name | None = None
    address: Address | None = None
    phone: Phone | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    capacity_kw: float | None = Field(default=None, ge=0, le=100_000)
    tariff_yen_per_kwh: float | None = Field(default=None, ge=0, le=1000)
    billing_start_date: Day | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> PlantUpdate:
        for name in ("customer_id", "name", "address", "phone"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class CustomerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    name: Name


class CustomerOut(BaseModel):
    customer_id: str
    name: str


class CustomerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="the customer's new name (its ID never changes)")


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
    password: Annotated[str, Field(min_length=8, max_length=200), AfterValidator(_no_control)]
    customer_id: CustomerId | None = Field(default=None, description="null = an admin, or an operator of all customers")
    language: Literal["ja", "en"] = "ja"
    role: Literal["admin", "operator", "viewer"] | None = Field(
        default=None, description="admin: no customer; operator: one customer or none (all); viewer: one customer. "
                                  "Omitted: admin without a customer, operator with one")


class UserPatch(BaseModel):
    """What an admin may change of a user; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["admin", "operator", "viewer"] | None = None
    customer_id: CustomerId | None = Field(default=None, description="null (given) = no customer")
    language: Literal["ja", "en"] | None = None
    password: Annotated[str, Field(min_length=8, max_length=200), AfterValidator(_no_control)] | None = None


class UserOut(BaseModel):
    user_id: int
    username: str
    customer_id: str | None
    language: str
    role: str
    locked_until: datetime | None = Field(default=None, description="locked out of the console until then")


MAX_KEY_DAYS = 365


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Name
    scope: Literal["read", "write"] = Field(default="write", description="read: GET only. A viewer's keys: read")
    expires_in_days: int = Field(default=90, ge=1, le=MAX_KEY_DAYS, description="the key stops working then")
    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")] | None = Field(
        default=None, description="whose key (admins only; others make their own)")
    customer_id: CustomerId | None = Field(
        default=None, description="admins only, without username: a key of no user for this customer's operator")


class ApiKeyOut(BaseModel):
    key_id: str
    label: str
    customer_id: str | None
    created_at: datetime
    revoked: bool
    user_id: int | None = None
    scope: str = "write"
    expires_at: datetime | None = None
    last_used_at: datetime | None = Field(default=None, description="to the minute")


class NewApiKey(ApiKeyOut):
    secret: str = Field(description="shown once: only its hash is stored")


class Page(BaseModel):
    total: int
    limit: int
    offset: int


class PlantPage(Page):
    items: list[PlantSummary]


class CustomerPage(Page):
    items: list[CustomerOut]


class UserPage(Page):
    items: list[UserOut]


class ApiKeyPage(Page):
    items: list[ApiKeyOut]


# ---- fleet -------------------------------------------------------------------------------------------
class GatewayBinding(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_code: ServiceCode | None = Field(description="the plant to bind to; null unbinds")


class EventOut(BaseModel):
    event_id: int
    kind: str
    state: str
    gateway_id: str | None
    service_code: str | None
    opened_at: datetime
    recovered_at: datetime | None
    message: str = Field(description="The English text as logged")
    alert_id: int | None = Field(default=None, description="The alert episode this event is a firing of")
    severity: Literal["critical", "warning", "info"] | None = None
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="The facts the texts are written from, per kind (docs/alerts.md)")
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    ack_comment: str | None = None
    phase: Literal["raised", "cleared", "acknowledged", "info"] = Field(
        description="raised (open), acknowledged (open, seen by an operator), cleared (recovered), info")
    kind_label: str = Field(description="The kind's short name in the language asked for")
    plant_name: str | None = Field(default=None, description="The name of the plant it happened at")
    text: str = Field(description="What happened, in the language asked for (?lang=)")


class EventPage(Page):
    # ?format=csv answers the matching events as CSV instead: flask-openapi3 adds it to the 200 answer
    model_config = ConfigDict(openapi_extra={"content": CSV_CONTENT})  # type: ignore[typeddict-unknown-key]

    items: list[EventOut]


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: NoticeKind
    title: Name = Field(description="in Japanese")
    body: NoticeBody = Field(description="in Japanese")
    title_en: Name | None = None
    body_en: NoticeBody | None = None
    starts_at: Moment | None = Field(default=None, description="shown from then (null: at once)")
    ends_at: Moment | None = Field(default=None, description="shown until then, exclusive (null: until deleted)")
    customer_id: CustomerId | None = Field(default=None, description="null = for every customer")

    @model_validator(mode="after")
    def _ends_after_start(self) -> NoticeIn:
        if self.starts_at is not None and self.ends_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class NoticePatch(BaseModel):
    """A notice's fields to change; a field left out stays, a field given as null is cleared."""

    model_config = ConfigDict(extra="forbid")

    kind: NoticeKind | None = None
    title: Name | None = None
    body: NoticeBody | None = None
    title_en: Name | None = None
    body_en: NoticeBody | None = None
    starts_at: Moment | None = None
    ends_at: Moment | None = None
    customer_id: CustomerId | None = None


class NoticeOut(BaseModel):
    notice_id: int
    kind: str
    title: str = Field(description="in `language`")
    body: str = Field(description="in `language`")
    language: str = Field(default="ja", description="the language of title and body: the asked one when written, "
                                                    "else ja")
    starts_at: datetime | None
    ends_at: datetime | None
    created_at: datetime
    customer_id: str | None
    title_ja: str | None = None
    body_ja: str | None = None
    title_en: str | None = None
    body_en: str | None = None
    created_by: str | None = None


class NoticePage(Page):
    items: list[NoticeOut]


class GatewayCounts(BaseModel):
    """Decommissioned gateways count nowhere; only offline ones are abnormal."""

    normal: int = Field(description="gateways online")
    abnormal: int = Field(description="gateways bound to a plant, heard from, and offline now")
    total: int = Field(description="online + offline + never_seen + unbound")
    online: int
    offline: int
    never_seen: int = Field(description="bound to a plant but never heard from (not installed yet)")
    unbound: int = Field(description="known but serving no plant (admins only)")


class Summary(BaseModel):
    """The home screen: management status, notices, the latest events, sold energy."""

    plants: int
    gateways: GatewayCounts
    total_sold_kwh: float
    today_sold_kwh: float
    open_events: int
    notices: list[NoticeOut]
    events: list[EventOut]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(openapi_extra={  # type: ignore[typeddict-unknown-key]
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None


# ---- queries -----------------------------------------------------------------------------------------
class PageQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=10_000_000)


class EventQuery(PageQuery):
    """The event log's filters (all optional, combined with AND) and the answer's format."""

    service_code: str | None = Field(default=None, pattern=r"^pss\d{8}$", description="one plant's events")
    kind: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,31}$",
                             description="one kind, e.g. gateway_offline (docs/alerts.md lists them)")
    state: Literal["open", "acknowledged", "recovered", "info"] | None = Field(
        default=None, description="open: still open and nobody has acknowledged it; acknowledged: still open, "
                                  "seen; recovered: over; info: something that happened once")
    since: datetime | None = Field(default=None, description="opened at or after (ISO 8601; no offset = JST)")
    until: datetime | None = Field(default=None, description="opened before (ISO 8601; no offset = JST)")
    lang: Literal["ja", "en"] = Field(default="en", description="the language of `text` and `kind_label`")
    format: Literal["json", "csv"] = Field(
        default="json", description="csv: every matching event (at most 100,000, newest first), not one page")
    encoding: Literal["utf-8", "shift_jis"] = Field(
        default="utf-8", description="CSV only: UTF-8 with BOM (default) or Shift_JIS (Windows-31J)")
    headers: Literal["en", "ja"] = Field(
        default="en", description="CSV only: column names as the API's field names (en) or in Japanese (ja)")

    @field_validator("since", "until")
    @classmethod
    def _in_japan_time(cls, moment: datetime | None) -> datetime | None:
        if moment is None:
            return None
        # Bounded like the series' days (its own wall-clock day: no conversion that could overflow).
        if not FIRST_DAY <= moment.date() <= LAST_DAY:
            raise ValueError(f"must lie between {FIRST_DAY} and {LAST_DAY}")
        # A time without an offset is a Japanese wall-clock time, as the console's users read times.
        return moment.replace(tzinfo=JST) if moment.tzinfo is None else moment

    @model_validator(mode="after")
    def _ordered(self) -> EventQuery:
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class NoticeQuery(PageQuery):
    current: bool = Field(default=False, description="only notices in force now (as state=current)")
    state: Literal["current", "scheduled", "past"] | None = Field(
        default=None, description="current: in force now; scheduled: starting later; past: ended")
    lang: Literal["ja", "en"] = Field(default="ja", description="the language of title and body (falls back to ja)")


class PlantPath(BaseModel):
    service_code: str = Field(pattern=r"^pss\d{8}$")


class GatewayPath(BaseModel):
    gateway_id: str = Field(pattern=rf"^{GATEWAY_ID_PATTERN}$")


class UserPath(BaseModel):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")


class CustomerPath(BaseModel):
    customer_id: CustomerId


class KeyQuery(PageQuery):
    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")] | None = Field(
        default=None, description="one user's keys (admins; everyone else sees only their own)")


class KeyPath(BaseModel):
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")


class NoticePath(BaseModel):
    notice_id: int = Field(ge=1, le=2**31 - 1)
