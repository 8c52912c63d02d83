"""What the registry hands out: small frozen records, never rows or connections."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal


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
    gateway_ids: tuple[str, ...]  # bound now
    # Every binding the plant ever had, oldest first: its series read each gateway through these.
    bindings: tuple[Binding, ...] = ()
    # Set when the plant was retired (v7): it keeps its data and code, but leaves lists and alerting.
    retired_at: datetime | None = None


@dataclass(frozen=True)
class Gateway:
    gateway_id: str
    service_code: str | None
    status: str
    status_changed_at: datetime | None
    last_seen_at: datetime | None
    power_interval_s: float
    heartbeat: dict[str, Any] | None
    decommissioned_at: datetime | None = None

    @property
    def condition(self) -> str:
        """What the home screen counts: online, offline, never_seen, unbound or decommissioned.

        Only `offline` is abnormal: a gateway that was never heard from is waiting to be installed,
        an unbound one serves no plant, and a decommissioned one is out of service."""
        return gateway_condition(decommissioned=self.decommissioned_at is not None,
                                 bound=self.service_code is not None, status=self.status)


def gateway_condition(*, decommissioned: bool, bound: bool, status: str) -> str:
    """`Gateway.condition` from its parts (the registry's counts group by them in SQL)."""
    if decommissioned:
        return "decommissioned"
    if not bound:
        return "unbound"
    if status in ("online", "offline"):
        return status
    return "never_seen"


@dataclass(frozen=True)
class Binding:
    """A gateway serving a plant from bound_from until bound_until (None: still).

    `reads_from` is where the plant's series start reading this gateway: bound_from, except for a
    gateway's first binding at a plant it did not take over from another gateway, which also reads
    what the gateway measured before it was bound (history backfilled from the meter, readings
    buffered while the operator had not bound it yet): None = from the first reading."""

    binding_id: int
    gateway_id: str
    service_code: str
    bound_from: datetime
    bound_until: datetime | None
    reads_from: datetime | None

    def covers(self, at: datetime) -> bool:
        """Whether a reading taken at `at` belongs to this binding's plant."""
        return (self.reads_from is None or self.reads_from <= at) and (self.bound_until is None
                                                                        or at < self.bound_until)


@dataclass(frozen=True)
class PresenceChange:
    """One online/offline transition of a gateway, as device-manager saw it."""

    gateway_id: str
    state: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class EventRecord:
    event_id: int
    kind: str
    state: str
    gateway_id: str | None
    service_code: str | None
    opened_at: datetime
    recovered_at: datetime | None
    message: str  # the English text, as logged (texts in other languages are rendered from kind + params)
    # v6 (issue 13): the alert episode it belongs to, its severity, the parameters its texts are
    # rendered from, and its acknowledgement (a firing alert's event only).
    alert_id: int | None = None
    severity: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    ack_comment: str | None = None


AlertScope = Literal["global", "customer", "tag", "plant"]
Severity = Literal["critical", "warning", "info"]
AlertState = Literal["pending", "firing", "resolved"]
HappeningPhase = Literal["raised", "cleared", "acknowledged", "info"]
ChannelKind = Literal["webhook", "email", "mqtt"]


@dataclass(frozen=True)
class AlertRule:
    """A declarative alert rule: one kind, at one scope. `params` are the kind's own settings."""

    rule_id: int
    kind: str
    scope: AlertScope
    scope_value: str | None  # customer id / gateway tag / service code; None for global
    enabled: bool
    severity: Severity
    raise_for_s: int  # the raise condition holds this long (pending) before the alert fires
    clear_for_s: int  # the clear condition holds this long before the alert resolves
    params: dict[str, Any]
    updated_at: datetime
    updated_by: str | None


@dataclass
class AlertRecord:
    """One episode of a rule kind at a subject (the dedupe key: kind, subject)."""

    alert_id: int | None  # None until saved
    kind: str
    subject: str  # service code, or "gateway:<id>" for a gateway bound to no plant
    service_code: str | None
    gateway_id: str | None
    rule_id: int | None
    severity: str
    state: AlertState
    pending_since: datetime | None = None
    firing_since: datetime | None = None
    clear_since: datetime | None = None  # since when the clear condition holds (None while it does not)
    resolved_at: datetime | None = None
    flapping: bool = False
    raise_times: list[datetime] = field(default_factory=list)  # raises within the flap window
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    ack_comment: str | None = None
    event_id: int | None = None  # the event-log row of the current (or last) firing
    params: dict[str, Any] = field(default_factory=dict)  # facts at the raise, for texts
    updated_at: datetime | None = None


@dataclass(frozen=True)
class AlertChange:
    """One episode change of an evaluation, for Registry.apply_alert_changes: "save" (timers),
    "fire" (with the event's English `message` and `params`) or "resolve" (`params` merged into the
    event's)."""

    action: Literal["save", "fire", "resolve"]
    record: AlertRecord
    at: datetime
    message: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Happening:
    """One row of the journal: something to tell people about an event (after the change)."""

    happening_id: int
    phase: HappeningPhase
    at: datetime
    event: EventRecord


@dataclass(frozen=True)
class Channel:
    """Where notifications go: a customer's (or, customer_id None, the operator's) webhook, mail or MQTT."""

    channel_id: int
    customer_id: str | None
    kind: ChannelKind
    name: str
    enabled: bool
    language: Literal["ja", "en"]
    min_severity: Severity
    config: dict[str, Any]  # webhook {"url", "secrets": [current, previous?]}; email {"to": [addresses]}
    group_wait_s: int
    group_interval_s: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PlantScope:
    """What a plant's rules are resolved by: its customer and the tags of its bound gateways."""

    customer_id: str
    tags: frozenset[str]


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
    # v7: title/body are Japanese; the English text beside it, when written.
    title_en: str | None = None
    body_en: str | None = None
    created_by: str | None = None


# What a console user or an API key may do (v7):
# - admin: everything, users and keys included; no customer.
# - operator: reads and changes the plants, gateways, notices and alerts of its customer (or of every
#   customer, customer_id None); no user management.
# - viewer: reads one customer's plants; changes nothing.
Role = Literal["admin", "operator", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "operator", "viewer")
KeyScope = Literal["read", "write"]


@dataclass(frozen=True)
class User:
    """A console login with its role; customer_id None = every customer (admins, fleet operators)."""

    user_id: int
    username: str
    customer_id: str | None
    language: str
    role: Role = "admin"
    locked_until: datetime | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_write(self) -> bool:
        return self.role != "viewer"


@dataclass(frozen=True)
class ApiKey:
    """An API key's record; its secret is never stored."""

    key_id: str
    label: str
    customer_id: str | None
    created_at: datetime
    revoked: bool
    # v7: the user it belongs to (None: a key made before users had keys), read or write, expiry.
    user_id: int | None = None
    scope: KeyScope = "write"
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class Principal:
    """Who a request speaks for: its role, its customer scope (None: every customer) and whether it
    may change anything (a viewer, or a read-scoped key, may not)."""

    key_id: str
    customer_id: str | None
    role: Role = "admin"
    can_write: bool = True

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
