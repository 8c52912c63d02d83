"""Pydantic models of every MQTT payload of contract v1 (see docs/asyncapi.yaml).

Third parties subscribe to these topics, so the models are strict about what they know: timestamps
must carry their timezone, and every payload carries `"v": 1`. They are tolerant of what they do not
know: v1 grows by optional fields, so a reader older than its writer must take a payload with fields
it has never heard of. Unknown fields are kept aside by pydantic (`extra="allow"`), never refused;
read payloads with `pms_common.contract_reader.ContractReader`, which drops and counts them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from pms_common import timeutil
from pms_common.topics import GATEWAY_ID_PATTERN, SERVICE_CODE_PATTERN

AwareDatetime = Annotated[datetime, AfterValidator(timeutil.require_aware)]
GatewayId = Annotated[str, Field(pattern=rf"^{GATEWAY_ID_PATTERN}$")]
ServiceCode = Annotated[str, Field(pattern=rf"^{SERVICE_CODE_PATTERN}$")]
MAX_READINGS_PER_BATCH = 1000
# Four days of 30-minute slots: the weather service looks back at most 72 h (145 slots).
MAX_EXPECTED_SLOTS = 192


def _is_slot_boundary(moment: datetime) -> datetime:
    if timeutil.to_epoch(moment) % int(timeutil.SLOT.total_seconds()) != 0 or moment.microsecond:
        raise ValueError("slot_end must fall on a 30-minute boundary")
    return moment


# "allow", not "ignore": pydantic keeps the unknown fields aside, where the reader finds, counts and
# drops them at almost no cost (a validator that looked at every key would slow ingest down).
TOLERANT = ConfigDict(extra="allow", frozen=True)


class Message(BaseModel):
    model_config = TOLERANT

    v: Literal[1] = 1

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class PowerReading(BaseModel):
    """Instantaneous power (E7, signed: negative = selling) and currents (E8, R and T phase)."""

    model_config = TOLERANT

    kind: Literal["power"] = "power"
    measured_at: AwareDatetime
    power_w: int = Field(ge=-(2**31), lt=2**31)
    current_r_a: float | None = None
    current_t_a: float | None = None

    @property
    def sold_power_w(self) -> int:
        return max(0, -self.power_w)


class EnergyReading(BaseModel):
    """The fixed-time cumulative registers (EA forward = bought, EB reverse = sold) at a slot end."""

    model_config = TOLERANT

    kind: Literal["energy"] = "energy"
    slot_end: Annotated[AwareDatetime, AfterValidator(_is_slot_boundary)]
    forward_kwh: float | None = Field(default=None, ge=0)
    reverse_kwh: float | None = Field(default=None, ge=0)
    register_wrap_kwh: float | None = Field(default=None, gt=0)
    backfilled: bool = False


Reading = Annotated[PowerReading | EnergyReading, Field(discriminator="kind")]


class ReadingsBatch(Message):
    gateway_id: GatewayId
    stream_id: str = Field(pattern=r"^[0-9a-f]{8,64}$")
    seq: int = Field(ge=1)
    # The lowest seq the gateway still holds: everything below it was acked, hence stored, so an
    # ingest that restarted (and forgot its progress) can still ack cumulatively.
    outbox_floor_seq: int = Field(ge=1)
    sent_at: AwareDatetime
    # May be empty: a batch whose power samples were thinned away keeps its seq so acks can pass it.
    readings: list[Reading] = Field(max_length=MAX_READINGS_PER_BATCH)


def _is_ordered_range(bounds: tuple[int, int]) -> tuple[int, int]:
    if bounds[0] > bounds[1]:
        raise ValueError(f"a stored range runs from its lower seq to its higher, not {list(bounds)}")
    return bounds


SeqRange = Annotated[tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]], AfterValidator(_is_ordered_range)]
MAX_STORED_RANGES = 1000


class Ack(Message):
    gateway_id: GatewayId
    stream_id: str
    acked_seq: int = Field(ge=0)
    at: AwareDatetime
    # Selective acks: batches stored beyond the cumulative point, as inclusive [from, to] ranges, so the
    # gateway deletes them without waiting for the gap below them to fill (ingest replicas sharing a
    # subscription each see only some of a gateway's batches). Absent from an ack that has none.
    stored_ranges: list[SeqRange] = Field(default_factory=list, max_length=MAX_STORED_RANGES)

    def to_json(self) -> bytes:
        # Gateways from before this field refuse every field they do not know: an ack with no ranges
        # goes out exactly as it did before it, so they still read the cumulative part.
        return self.model_dump_json(exclude=None if self.stored_ranges else {"stored_ranges"}).encode()


class GatewayStatus(Message):
    gateway_id: GatewayId
    state: Literal["online", "offline"]
    at: AwareDatetime | None = None
    reason: Literal["connection lost", "shutdown"] | None = None


class BackfillStatus(Message):
    """What the gateway's E2/E4 backfill is doing: it retries on its own backoff, live reads go on."""

    pending_days: int = Field(default=0, ge=0)
    last_failure: str | None = None
    last_failure_at: AwareDatetime | None = None
    next_attempt_at: AwareDatetime | None = None
    failures_total: int = Field(default=0, ge=0)
    # Slots whose history disagreed with the registers read live (the live value stood).
    conflicts_total: int = Field(default=0, ge=0)
    last_conflict: str | None = None


class Heartbeat(Message):
    gateway_id: GatewayId
    at: AwareDatetime
    uptime_s: float = Field(ge=0)
    firmware: str
    # "unknown" until the link has detected the module's family (auto detection).
    module_family: Literal["sim", "single-hop", "dual-stack", "lan", "unknown"]
    rssi_dbm: int | None = None
    lqi: int | None = None
    read_errors_total: int = Field(ge=0)
    outbox_depth: int = Field(ge=0)
    last_slot_end: AwareDatetime | None = None
    power_interval_s: float = Field(gt=0)
    heartbeat_interval_s: float = Field(gt=0)
    meter_address: str | None = None  # link "lan": the meter's address, as configured or discovered
    # The meter's clock minus the gateway's (seconds, + = ahead) as last judged, beyond the reading's
    # minute resolution and the link's latency; None until judged.
    meter_clock_skew_s: float | None = None
    # When the skew went beyond the gateway's threshold; None while the meter's clock is within it.
    meter_clock_skewed_since: AwareDatetime | None = None
    # Why the meter's register scale (D3/E1/D7) is refused, in one sentence; None while it is valid.
    # Meanwhile no energy is read (power is).
    meter_scale_problem: str | None = None
    backfill: BackfillStatus | None = None


# Fields added to Weather in contract 1.3.0; a producer leaves them out while they are null.
WEATHER_OPTIONAL_FIELDS = frozenset(
    {"dni_w_m2", "dhi_w_m2", "gti_w_m2", "cloud_cover_pct", "weather_code", "model", "stale"}
)


class Weather(Message):
    """Weather at a plant. `observed_at` is the END of the period the values describe: for a
    provider's series, the end of a 30-minute slot (JST, aligned to the meter's slots), the
    irradiances being the slot's mean; for an instantaneous estimate, the moment itself."""

    service_code: ServiceCode
    observed_at: AwareDatetime
    ghi_w_m2: float = Field(ge=0)
    temperature_c: float | None = None
    source: str
    # Since 1.3.0 (all optional): direct normal, diffuse horizontal and plane-of-array (tilted)
    # irradiance, cloud cover, WMO weather code, the provider's model, and whether the provider was
    # unreachable so the values are older data (or the clear-sky fallback) standing in.
    dni_w_m2: float | None = Field(default=None, ge=0)
    dhi_w_m2: float | None = Field(default=None, ge=0)
    gti_w_m2: float | None = Field(default=None, ge=0)
    cloud_cover_pct: float | None = Field(default=None, ge=0, le=100)
    weather_code: int | None = Field(default=None, ge=0, le=99)
    model: str | None = None
    stale: bool | None = None

    def to_json(self) -> bytes:
        # Readers from before 1.3.0 that refuse unknown fields keep reading a clear-sky observation.
        empty = {name for name in WEATHER_OPTIONAL_FIELDS if getattr(self, name) is None}
        return self.model_dump_json(exclude=empty or None).encode()


class ExpectedSlot(BaseModel):
    """The AC energy a plant should have produced in one 30-minute slot (named by its END, JST)."""

    model_config = TOLERANT

    slot_end: Annotated[AwareDatetime, AfterValidator(_is_slot_boundary)]
    expected_kwh: float = Field(ge=0)
    # Where the slot's irradiance came from: the weather's `source[:model]`, or `clear_sky` (pvlib's model).
    source: str


class ExpectedYield(Message):
    """Since 1.6.0: a plant's expected energy per slot, computed by the weather service with the
    expected-yield model (pms_plant.expected, the API's code) on the weather it published, the
    plant's PV parameters and its calibration factor (docs/expected-yield.md). A slot published again
    (revised weather, new parameters) replaces the earlier value."""

    service_code: ServiceCode
    computed_at: AwareDatetime
    calibration: float = Field(gt=0)
    slots: list[ExpectedSlot] = Field(min_length=1, max_length=MAX_EXPECTED_SLOTS)


EventKind = Literal["gateway_offline", "gateway_recovered", "billing_start_decided", "register_anomaly",
                    "meter_clock_skew", "meter_scale_invalid", "meter_history_conflict",
                    # since 1.5.0: the alert rules of issue 13, and the log of an acknowledgement
                    "meter_unreachable", "no_generation", "yield_below_expected", "data_gap", "update_failed",
                    "alert_acknowledged"]
Severity = Literal["critical", "warning", "info"]
# Since 1.5.0 (all optional): sent only when they hold a value, so a reader from before 1.5.0 that
# refuses unknown fields keeps reading the events it knows.
EVENT_OPTIONAL_FIELDS = frozenset({"phase", "alert_id", "severity", "params", "acknowledged_at", "acknowledged_by",
                                   "ack_comment"})


class Event(Message):
    """An event of the log, published when it opens, recovers, is acknowledged, or as news.

    `message` is the English sentence (pms_common.event_text); `params` are the facts it was
    written from, so a reader can write its own sentence in its own language (docs/alerts.md)."""

    event_id: int
    kind: EventKind
    state: Literal["open", "recovered", "info"]
    gateway_id: str | None = None
    service_code: str | None = None
    opened_at: AwareDatetime
    recovered_at: AwareDatetime | None = None
    message: str
    # What this publication tells: raised, cleared, acknowledged (the alert is still open) or info.
    phase: Literal["raised", "cleared", "acknowledged", "info"] | None = None
    alert_id: int | None = None
    severity: Severity | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    acknowledged_at: AwareDatetime | None = None
    acknowledged_by: str | None = None
    ack_comment: str | None = None

    def to_json(self) -> bytes:
        empty = {name for name in EVENT_OPTIONAL_FIELDS if getattr(self, name) in (None, {})}
        return self.model_dump_json(exclude=empty or None).encode()


class DeadLetter(Message):
    service: str
    topic: str
    reason: str
    payload: str
    payload_encoding: Literal["utf-8", "base64"]
    received_at: AwareDatetime


# ---- remote control over the connection the gateway dials out (docs/gateway.md) -------------
CommandName = Literal["rejoin", "backfill", "read_property", "restart_link"]
_UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
CorrelationId = Annotated[str, Field(pattern=_UUID_PATTERN)]


class CommandRequest(Message):
    """cmd/req: `args` e.g. {"days": 2} or {"from": ..., "to": ...} for backfill, {"epc": "E7"} for read_property."""

    correlation_id: CorrelationId
    command: CommandName
    args: dict[str, object]
    deadline: AwareDatetime


class CommandResult(Message):
    correlation_id: CorrelationId
    ok: bool
    result: dict[str, object] | None = None
    error: str | None = None
    at: AwareDatetime


# What a gateway can change live, and within which bounds: the collector clamps to them and the API
# refuses a desired document outside them with a sentence naming the field.
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")
POWER_INTERVAL_LIMITS_S = (1.0, 3600.0)
HEARTBEAT_INTERVAL_LIMITS_S = (1.0, 3600.0)
ENERGY_INTERVAL_LIMITS_S = (1.0, 86400.0)
# What a gateway runs before any configuration was pushed (the collector's settings' defaults).
CONFIG_DEFAULTS: dict[str, float | str] = {"power_interval_s": 60.0, "heartbeat_interval_s": 30.0,
                                           "energy_interval_s": 600.0, "log_level": "INFO"}


class ConfigDesired(Message):
    """config/desired (retained): a gateway applies a version newer than the one it runs.

    `energy_interval_s` and `log_level` came in contract 1.1: absent means "keep what runs", and a
    gateway from before them ignores them (it applies the intervals it knows and reports the version).
    """

    version: int = Field(ge=1)
    power_interval_s: float = Field(gt=0)
    heartbeat_interval_s: float = Field(gt=0)
    energy_interval_s: float | None = Field(default=None, gt=0)
    log_level: LogLevel | None = None


class ConfigReported(Message):
    """config/reported (retained): the gateway's whole effective configuration, sent on every
    (re)connect and after each applied version; never a delta. The 1.1 fields are absent from a
    gateway from before them."""

    version: int = Field(ge=0)
    power_interval_s: float = Field(gt=0)
    heartbeat_interval_s: float = Field(gt=0)
    applied_at: AwareDatetime
    energy_interval_s: float | None = Field(default=None, gt=0)
    log_level: LogLevel | None = None


# ---- software update (contract 1.4) ------------------------------------------------------------------
UpdateState = Literal["queued", "downloading", "verifying", "installing", "restarting", "checking_health",
                      "committed", "rolled_back", "failed", "expired", "cancelled"]
# The states a gateway reports; the cloud adds queued (sent, not yet started), expired and cancelled.
GATEWAY_UPDATE_STATES: tuple[UpdateState, ...] = ("downloading", "verifying", "installing", "restarting",
                                                  "checking_health", "committed", "rolled_back", "failed")
FINAL_UPDATE_STATES: frozenset[str] = frozenset({"committed", "rolled_back", "failed", "expired", "cancelled"})


class UpdateJob(Message):
    """update/job (retained): the image a gateway should install, until `not_after`.

    An empty retained message withdraws it (rollout cancelled, the gateway's deadline passed). A
    gateway that comes online after `not_after` does not start the job. `manifest` is the signed
    manifest as uploaded (pms_common.firmware.Manifest); the gateway verifies it with its own keys.
    """

    job_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    rollout_id: str
    version: str
    image_url: str  # on the API, authenticated with the gateway's own login (HTTP Basic)
    manifest: dict[str, object]
    not_after: AwareDatetime
    health_timeout_s: float = Field(default=300.0, gt=0, le=86400)
    issued_at: AwareDatetime


class UpdateReport(Message):
    """update/state (retained): where the gateway is with a job; the last one stays for the cloud to
    read after its own restart. `version` is what runs now, `target_version` what the job installs."""

    gateway_id: GatewayId
    job_id: str
    state: UpdateState
    version: str
    target_version: str
    reason: str | None = None
    progress: float | None = Field(default=None, ge=0, le=1)  # of the download
    at: AwareDatetime
