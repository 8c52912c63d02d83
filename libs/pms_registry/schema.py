"""Registry tables. SQLite by default, PostgreSQL in production; the same Core schema serves both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from pms_common.timeutil import JST


class AwareDateTime(TypeDecorator[datetime]):
    """Timezone-aware on both engines: stored as UTC (SQLite keeps no offset), read back in JST."""

    impl = DateTime
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__(timezone=timezone)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the registry stores timezone-aware timestamps only")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(JST)  # type: ignore[no-any-return]


metadata = MetaData()

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
)

plants = Table(
    "plants",
    metadata,
    Column("service_code", String(11), primary_key=True),
    Column("customer_id", String(32), ForeignKey("customers.customer_id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("address", String(400), nullable=False),
    Column("phone", String(32), nullable=False),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("capacity_kw", Float),
    Column("tariff_yen_per_kwh", Float),
    Column("billing_start_date", Date),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    # v7 (issue 15): a retired plant keeps its data and code but leaves lists and alerting.
    Column("retired_at", AwareDateTime(timezone=True)),
)

# Service codes are issued from a counter so a code is never reused, even after a plant is deleted.
service_code_counter = Table(
    "service_code_counter",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("last_issued", Integer, nullable=False),
)

gateways = Table(
    "gateways",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("service_code", String(11), ForeignKey("plants.service_code"), index=True),
    Column("status", String(16), nullable=False, default="unknown"),
    Column("status_changed_at", AwareDateTime(timezone=True)),
    Column("last_seen_at", AwareDateTime(timezone=True)),
    Column("power_interval_s", Float, nullable=False, default=60.0),
    Column("heartbeat", JSON),
    # v3 (bindings): set once when the gateway is taken out of service; it then counts nowhere.
    Column("decommissioned_at", AwareDateTime(timezone=True)),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("customer_id", String(32), ForeignKey("customers.customer_id")),  # NULL = admin
    Column("label", String(200), nullable=False),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    # v7 (issue 15): a key belongs to a user and speaks with that user's role and scope, narrowed to
    # `scope` (read | write); it stops working at `expires_at`. Keys made before v7 have no user:
    # customer_id NULL is an admin key, a customer's key speaks as that customer's operator.
    Column("user_id", Integer, index=True),
    Column("scope", String(8)),
    Column("expires_at", AwareDateTime(timezone=True)),
    Column("last_used_at", AwareDateTime(timezone=True)),
)

events = Table(
    "events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("gateway_id", String(64), index=True),
    Column("service_code", String(11), index=True),
    Column("opened_at", AwareDateTime(timezone=True), nullable=False, index=True),
    Column("recovered_at", AwareDateTime(timezone=True)),
    Column("message", Text, nullable=False),
    # v6 (issue 13): see EVENT_COLUMNS_V6
    Column("alert_id", Integer, index=True),
    Column("severity", String(16)),
    Column("params", JSON),
    Column("acknowledged_at", AwareDateTime(timezone=True)),
    Column("acknowledged_by", String(200)),
    Column("ack_comment", Text),
)

notices = Table(
    "notices",
    metadata,
    Column("notice_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # maintenance | outage | info
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("starts_at", AwareDateTime(timezone=True)),
    Column("ends_at", AwareDateTime(timezone=True)),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    # v2: NULL = shown to everyone; a customer ID = shown to that customer (and admins) only.
    Column("customer_id", String(32), ForeignKey("customers.customer_id"), index=True),
    # v7 (issue 15): title/body are the Japanese text; the English text beside it (NULL: shown in
    # Japanese to English readers too). Kind gains `firmware`.
    Column("title_en", String(200)),
    Column("body_en", Text),
    Column("created_by", String(200)),
)

# v2: console logins. Admins have no customer; a customer's users see only its plants.
users = Table(
    "users",
    metadata,
    Column("user_id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("customer_id", String(32), ForeignKey("customers.customer_id")),  # NULL = admin
    Column("language", String(2), nullable=False, default="ja"),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    # v7 (issue 15): admin | operator | viewer (USER_COLUMNS_V7). Admins have no customer; an
    # operator has one customer or none (all customers); a viewer has exactly one. The lockout is
    # kept here so every API worker sees it and an admin can lift it.
    Column("role", String(16)),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("first_failed_at", AwareDateTime(timezone=True)),
    Column("locked_until", AwareDateTime(timezone=True)),
)

# v2: secrets the services share through the registry (the console's session signing key), so
# every API worker and replica signs sessions alike without another setting to distribute.
shared_secrets = Table(
    "shared_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)

schema_version = Table(
    "schema_version",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    UniqueConstraint("id"),
)

# ---- v3, gateway control (issue 11): config push, commands with deadlines, the audit log --------
# No foreign keys to gateways: a command or a desired document may name a gateway before it was seen,
# and the audit log outlives what it names.

# The configuration a gateway should run: `version` grows with each change; `published_version` is
# the one device-manager last published retained (it publishes whenever the two differ).
gateway_config_desired = Table(
    "gateway_config_desired",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("document", JSON, nullable=False),
    Column("updated_at", AwareDateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("published_version", Integer),
    Column("audit_id", Integer),  # the audit entry of the push, whose outcome is set when it is applied
)

# The whole configuration a gateway last reported (on every connect and after applying a version).
gateway_config_reported = Table(
    "gateway_config_reported",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("document", JSON, nullable=False),
    Column("reported_at", AwareDateTime(timezone=True), nullable=False),
)

gateway_tags = Table(
    "gateway_tags",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("tag", String(64), primary_key=True, index=True),
)

gateway_commands = Table(
    "gateway_commands",
    metadata,
    Column("command_id", String(36), primary_key=True),  # a UUID: the correlation id on cmd/req and cmd/res
    Column("gateway_id", String(64), nullable=False, index=True),
    Column("command", String(32), nullable=False),
    Column("args", JSON, nullable=False),
    Column("state", String(16), nullable=False, index=True),  # queued | sent | succeeded | failed | expired
    Column("requested_by", String(200), nullable=False),
    Column("created_at", AwareDateTime(timezone=True), nullable=False, index=True),
    Column("deadline", AwareDateTime(timezone=True), nullable=False),
    Column("sent_at", AwareDateTime(timezone=True)),
    Column("finished_at", AwareDateTime(timezone=True)),
    Column("result", JSON),
    Column("reason", Text),
    Column("audit_id", Integer),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("at", AwareDateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False, index=True),
    Column("detail", JSON, nullable=False),
    Column("outcome", String(400), nullable=False),
)

# ---- v3, bindings and presence (issue 11) ---------------------------------------------------------
# Which plant a gateway served when: the plant's series read each gateway only within its intervals,
# so moving a gateway leaves its earlier readings with the earlier plant. bound_until NULL = open.
# gateways.service_code stays the current (open) binding, kept in step by the registry.
gateway_bindings = Table(
    "gateway_bindings",
    metadata,
    Column("binding_id", Integer, primary_key=True, autoincrement=True),
    Column("gateway_id", String(64), ForeignKey("gateways.gateway_id"), nullable=False, index=True),
    # No foreign key: a deleted plant's bindings stay as the record of what its gateways served.
    Column("service_code", String(11), nullable=False, index=True),
    Column("bound_from", AwareDateTime(timezone=True), nullable=False),
    Column("bound_until", AwareDateTime(timezone=True)),
)

# Every online/offline transition device-manager saw, with its reason ("connected", "no heartbeat
# for 90 s", the last will's reason...): the gateway page's presence history.
gateway_presence = Table(
    "gateway_presence",
    metadata,
    Column("presence_id", Integer, primary_key=True, autoincrement=True),
    Column("gateway_id", String(64), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("at", AwareDateTime(timezone=True), nullable=False, index=True),
    Column("reason", String(200), nullable=False),
)

# ---- v3, zero-config provisioning (pms_registry/provisioning.py) ---------------------------------
# The manufacturer's list: keys derived from each factory secret (never the secret) and a hash of the
# claim code on the label (never the code). The gateway id is fixed at import from the serial.
factory_gateways = Table(
    "factory_gateways",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("gateway_id", String(64), nullable=False, unique=True),
    Column("proof_key", String(64), nullable=False),  # hex HKDF-SHA256 output
    Column("answer_key", String(64), nullable=False),
    Column("claim_code_hash", String(64), nullable=False, unique=True),
    Column("imported_at", AwareDateTime(timezone=True), nullable=False),
    Column("claimed_at", AwareDateTime(timezone=True)),  # the first accepted claim
    Column("last_claim_at", AwareDateTime(timezone=True)),
    Column("claims_total", Integer, nullable=False, default=0),
    Column("blocked", Boolean, nullable=False, default=False),
    Column("blocked_reason", Text),
)

# Nonces of claims seen within the claim window (a replayed claim is refused); older ones are pruned.
claim_nonces = Table(
    "claim_nonces",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("nonce", String(64), primary_key=True),
    Column("seen_at", AwareDateTime(timezone=True), nullable=False, index=True),
)

# Each provisioned gateway's broker login: active, revoke_requested, revoked.
broker_logins = Table(
    "broker_logins",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    Column("rotated_at", AwareDateTime(timezone=True), nullable=False),
    Column("revoked_at", AwareDateTime(timezone=True)),
    Column("reason", Text),
)

# Revocations asked for (unbinding, replacing, decommissioning), carried out by device-manager.
revocation_requests = Table(
    "revocation_requests",
    metadata,
    Column("request_id", Integer, primary_key=True, autoincrement=True),
    Column("gateway_id", String(64), nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("requested_at", AwareDateTime(timezone=True), nullable=False),
    Column("done_at", AwareDateTime(timezone=True), index=True),
    Column("outcome", Text),  # "revoked", "superseded by a new claim", or the last failure
)

# ---- expected yield (issue 14) ----
# A plant's PV parameters: each column null = the default pms_pv derives (from capacity_kw for DC);
# the calibration factor learned from clear days, with when and from how many days.
plant_pv = Table(
    "plant_pv",
    metadata,
    Column("service_code", String(11), ForeignKey("plants.service_code"), primary_key=True),
    Column("dc_kw", Float),
    Column("ac_kw", Float),
    Column("tilt_deg", Float),
    Column("azimuth_deg", Float),  # pvlib's convention: 180 = south
    Column("system_loss_pct", Float),
    Column("gamma_pct_per_c", Float),
    Column("calibration_factor", Float),
    Column("calibrated_at", AwareDateTime(timezone=True)),
    Column("calibration_days", Integer),
)

# ---- software update (issue 12) ----------------------------------------------------------------------
# Signed collector images, stored as files by digest (the API's firmware directory); the registry keeps
# what their manifests say.
firmware_images = Table(
    "firmware_images",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("min_version", String(64)),
    Column("key_id", String(16), nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("uploaded_at", AwareDateTime(timezone=True), nullable=False),
    Column("uploaded_by", String(200)),
)

# A hash of each gateway's broker password (scrypt, salted), so the API can check the gateway's own
# login when it downloads an image: the broker keeps the password, the cloud only this.
gateway_login_secrets = Table(
    "gateway_login_secrets",
    metadata,
    Column("gateway_id", String(64), primary_key=True),
    Column("password_hash", String(300), nullable=False),
    Column("set_at", AwareDateTime(timezone=True), nullable=False),
)

# Staged rollouts of an image to a target's gateways, in groups (pms_registry/rollouts.py). The
# members are fixed at creation, each with its group; device-manager drives them from here, so its
# restart resumes every rollout where it was.
rollouts = Table(
    "rollouts",
    metadata,
    Column("rollout_id", String(16), primary_key=True),  # "ro-" + 8 hex
    Column("image_sha256", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("target", JSON, nullable=False),  # {"customer": id} | {"tag": t} | {"gateways": [ids]}
    Column("group_sizes", JSON, nullable=False),  # cumulative percents of the target; the last takes the rest
    Column("success_threshold", Float, nullable=False),
    Column("error_threshold", Float, nullable=False),
    Column("error_action", String(8), nullable=False),  # pause | abort
    Column("min_group_size", Integer, nullable=False),
    Column("deadline_s", Float, nullable=False),
    Column("health_timeout_s", Float, nullable=False),
    Column("window", String(16), nullable=False),  # any | after_sunset
    Column("state", String(16), nullable=False, index=True),
    Column("current_group", Integer, nullable=False),
    Column("state_reason", Text),
    # Members in error that a resume accepted: the error threshold counts only the ones after them.
    Column("errors_accepted", Integer, nullable=False, default=0),
    Column("created_at", AwareDateTime(timezone=True), nullable=False, index=True),
    Column("created_by", String(200), nullable=False),
    Column("updated_at", AwareDateTime(timezone=True), nullable=False),
)

rollout_gateways = Table(
    "rollout_gateways",
    metadata,
    Column("rollout_id", String(16), ForeignKey("rollouts.rollout_id"), primary_key=True),
    Column("gateway_id", String(64), primary_key=True, index=True),
    Column("group_index", Integer, nullable=False),
    Column("position", Integer, nullable=False),  # order within the rollout (groups are runs of it)
    Column("state", String(16), nullable=False, index=True),  # pending | waiting_window | UpdateState values
    Column("reason", Text),
    Column("from_version", String(64)),
    Column("version", String(64)),
    Column("job_id", String(128), nullable=False, unique=True),
    Column("sent_at", AwareDateTime(timezone=True)),
    Column("state_since", AwareDateTime(timezone=True), nullable=False),
    Column("deadline_at", AwareDateTime(timezone=True)),
    Column("updated_at", AwareDateTime(timezone=True), nullable=False),
    # In error when the operator resumed: counted neither by the error threshold nor against success.
    Column("error_accepted", Boolean, nullable=False, default=False),
)

# ---- v6, alerts operators trust (issue 13; pms_registry/alerting.py, deliveries.py) ------------------
# Declarative rules: one global default per kind (seeded), overridden per customer, gateway tag or
# plant; the most specific enabled rule of a kind applies to a plant.
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("rule_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False, index=True),
    Column("scope", String(16), nullable=False),  # global | customer | tag | plant
    Column("scope_value", String(64), nullable=False),  # "" for global (NULLs never collide in UNIQUE)
    Column("enabled", Boolean, nullable=False),
    Column("severity", String(16), nullable=False),  # critical | warning | info
    Column("raise_for_s", Integer, nullable=False),
    Column("clear_for_s", Integer, nullable=False),
    Column("params", JSON, nullable=False),
    Column("updated_at", AwareDateTime(timezone=True), nullable=False),
    Column("updated_by", String(200)),
    UniqueConstraint("kind", "scope", "scope_value", name="uq_alert_rules_kind_scope"),
)

# Episodes: one row per raise of a rule kind at a subject (the dedupe key), kept after it resolves.
alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("subject", String(80), nullable=False),  # service code, or "gateway:<id>" for an unbound gateway
    Column("service_code", String(11), index=True),
    Column("gateway_id", String(64)),
    Column("rule_id", Integer),
    Column("severity", String(16), nullable=False),
    Column("state", String(16), nullable=False, index=True),  # pending | firing | resolved
    Column("pending_since", AwareDateTime(timezone=True)),
    Column("firing_since", AwareDateTime(timezone=True)),
    Column("clear_since", AwareDateTime(timezone=True)),
    Column("resolved_at", AwareDateTime(timezone=True)),
    Column("flapping", Boolean, nullable=False, default=False),
    Column("raise_times", JSON, nullable=False),  # ISO times of the raises within the flap window
    Column("acknowledged_at", AwareDateTime(timezone=True)),
    Column("acknowledged_by", String(200)),
    Column("ack_comment", Text),
    Column("event_id", Integer),
    Column("params", JSON, nullable=False),
    Column("updated_at", AwareDateTime(timezone=True)),
)
Index("ix_alerts_kind_subject", alerts.c.kind, alerts.c.subject)

# The journal: an append-only row for everything to tell people (a raise, a clear, an
# acknowledgement, an information event). Notification channels and the MQTT publisher each tail
# it with their own cursor, so a change made by any process (an acknowledgement in the API) reaches
# every channel, and a restart resumes where the cursor was.
event_happenings = Table(
    "event_happenings",
    metadata,
    Column("happening_id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", Integer, nullable=False, index=True),
    Column("phase", String(16), nullable=False),  # raised | cleared | acknowledged | info
    Column("at", AwareDateTime(timezone=True), nullable=False),
)

cursors = Table(
    "cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

notification_channels = Table(
    "notification_channels",
    metadata,
    Column("channel_id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(32), index=True),  # NULL: the operator's own channel, every customer
    Column("kind", String(16), nullable=False),  # webhook | email | mqtt
    Column("name", String(100), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("language", String(2), nullable=False),
    Column("min_severity", String(16), nullable=False),
    Column("config", JSON, nullable=False),
    Column("group_wait_s", Integer, nullable=False),
    Column("group_interval_s", Integer, nullable=False),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    Column("updated_at", AwareDateTime(timezone=True), nullable=False),
)

notification_queue = Table(
    "notification_queue",
    metadata,
    Column("queue_id", Integer, primary_key=True, autoincrement=True),
    Column("channel_id", Integer, nullable=False, index=True),
    Column("happening_id", Integer, nullable=False),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    Column("delivery_id", Integer, index=True),
    UniqueConstraint("channel_id", "happening_id", name="uq_notification_queue_channel_happening"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("delivery_id", Integer, primary_key=True, autoincrement=True),
    Column("channel_id", Integer, nullable=False, index=True),
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("body", JSON, nullable=False),
    Column("state", String(16), nullable=False, index=True),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    Column("next_attempt_at", AwareDateTime(timezone=True), nullable=False, index=True),
    Column("last_attempt_at", AwareDateTime(timezone=True)),
    Column("last_error", Text),
    Column("delivered_at", AwareDateTime(timezone=True)),
)

# Columns v6 adds to `events` (alerting.py): which episode an event is, its severity, the
# parameters its texts are rendered from, and its acknowledgement.
EVENT_COLUMNS_V6 = {
    "alert_id": "INTEGER",
    "severity": "VARCHAR(16)",
    "params": "JSON",
    "acknowledged_at": "TIMESTAMP",
    "acknowledged_by": "VARCHAR(200)",
    "ack_comment": "TEXT",
}

# ---- v7, the console runs a fleet (issue 15) ----------------------------------------------------------
# A plant's selling price over time: each row holds from `effective_from` (a JST day) until the next
# row's; NULL = since the plant began. `bands` is the optional time-of-use table: a list of
# {"from": "HH:MM", "until": "HH:MM", "yen_per_kwh": x} covering parts of the day, the flat price
# applying outside them.
plant_tariffs = Table(
    "plant_tariffs",
    metadata,
    Column("tariff_id", Integer, primary_key=True, autoincrement=True),
    Column("service_code", String(11), ForeignKey("plants.service_code"), nullable=False, index=True),
    Column("effective_from", Date),
    Column("yen_per_kwh", Float, nullable=False),
    Column("bands", JSON),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    Column("created_by", String(200)),
    UniqueConstraint("service_code", "effective_from"),
)

# ---- v7, helper "plants": a CSV import between its preview and its confirmation ------------------------
# The previewed valid rows wait here (not in the API process) so that any API replica confirms them,
# exactly those rows, once. `token_hash` is the SHA-256 of the token the preview answered.
plant_imports = Table(
    "plant_imports",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("actor", String(200), nullable=False),
    Column("customer_scope", String(32)),  # the importer's customer (None: every customer)
    Column("rows", JSON, nullable=False),
    Column("created_at", AwareDateTime(timezone=True), nullable=False),
    Column("expires_at", AwareDateTime(timezone=True), nullable=False),
    Column("confirmed_at", AwareDateTime(timezone=True)),
)

PLANT_COLUMNS_V7 = {"retired_at": "TIMESTAMP"}
API_KEY_COLUMNS_V7 = {"user_id": "INTEGER", "scope": "VARCHAR(8)", "expires_at": "TIMESTAMP",
                      "last_used_at": "TIMESTAMP"}
NOTICE_COLUMNS_V7 = {"title_en": "VARCHAR(200)", "body_en": "TEXT", "created_by": "VARCHAR(200)"}
USER_COLUMNS_V7 = {"role": "VARCHAR(16)", "failed_logins": "INTEGER NOT NULL DEFAULT 0",
                   "first_failed_at": "TIMESTAMP", "locked_until": "TIMESTAMP"}

SCHEMA_VERSION = 7
