from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field, SecretStr, field_validator, model_validator

from pms_collector.version import firmware_text
from pms_common import firmware
from pms_common.settings import ServiceSettings
from pms_common.topics import GATEWAY_ID_PATTERN


class CollectorSettings(ServiceSettings):
    default_metrics_port: ClassVar[int] = 9101

    gateway_id: str = Field(default="gw-0001", pattern=rf"^{GATEWAY_ID_PATTERN}$")
    link: Literal["serial", "sim", "lan"] = Field(
        default="serial",
        description="serial: a Wi-SUN dongle at `device`; sim: a virtual module on a pty inside this process; "
                    "lan: an ECHONET Lite meter on the LAN (a HEMS controller or a Wi-SUN-to-Ethernet bridge)",
    )
    device: str = Field(default="/dev/ttyWISUN0", description="serial device of the Wi-SUN module")
    baudrate: int = Field(default=115200, gt=0)
    module_family: Literal["auto", "single-hop", "dual-stack"] = Field(
        default="auto", description="SKSTACK family; auto detects it from the module")
    broute_id: str = Field(default="", description="the 32-character B-route authentication ID")
    broute_password: SecretStr = Field(default=SecretStr(""), description="the 12-character B-route password")
    power_interval_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    heartbeat_interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    energy_interval_s: float = Field(default=600.0, ge=1.0, le=86400.0, description="E0/E3 periodic read")
    slot_fallback_s: float = Field(default=20.0, gt=0, description="wait this long for the INF push, then Get EA/EB")
    outbox_path: Path | None = Field(default=None, description="default: var/outbox-<gateway_id>.db")
    outbox_max_batches: int = Field(default=200_000, ge=100)
    outbox_sync: Literal["full", "normal"] = Field(
        default="full",
        description="full: every outbox write is on the disk before it is published (survives a power cut); "
                    "normal: survives a crash of the process but may lose the last writes on a power cut, for "
                    "many outboxes on one disk (pms up's simulated fleet)")
    resend_timeout_s: float = Field(default=15.0, gt=0)
    max_in_flight: int = Field(default=50, ge=1)
    read_timeout_s: float = Field(default=30.0, gt=0, description="one meter request, queueing included")
    meter_check_interval_s: float = Field(
        default=600.0, gt=0, description="read the register scale (D3/E1/D7) and the meter's clock again this often")
    meter_clock_skew_threshold_s: float = Field(
        default=300.0, gt=0, description="report the meter's clock when it is further than this from the gateway's")
    backfill_days: int = Field(
        default=99, ge=0, le=99,
        description="on a first start, read the meter's E2/E4 history this many days back (the meter keeps 99;"
                    " 0: only its current day from midnight), one day per turn between live reads")
    backfill_retry_s: float = Field(
        default=30.0, gt=0,
        description="wait after a failed backfill day (doubling on each failure up to 20 times this);"
                    " power and registers are read on meanwhile")
    firmware: str = Field(default_factory=firmware_text,
                          description="what the heartbeat calls this software (default: pms-collector/<version>)")
    # ---- remote software update (docs/software-update.md, "On the gateway")
    update_root: Path | None = Field(
        default=None, description="the launcher's update root (slots, state.json, downloads); unset: this gateway "
                                  "takes no updates (a job is reported failed)")
    firmware_keys: list[str] = Field(
        default_factory=list, description="trusted image-signing keys ('ed25519:<base64>' or PEM); two during a "
                                          "key rotation")
    update_progress_interval_s: float = Field(default=5.0, gt=0, description="report a download's progress at "
                                                                             "most this often")
    # ---- zero-config provisioning (docs/provisioning.md): set serial + secret, and a provisioning login
    # in mqtt_url; the claimed identity then replaces gateway_id and mqtt_url's login.
    gateway_serial: str | None = Field(default=None, description="the serial on the gateway's label; with "
                                                                 "factory_secret, the gateway claims its identity")
    factory_secret: SecretStr | None = Field(default=None, description="the factory secret (never sent)")
    credentials_path: Path = Field(default=Path("var/credentials.json"),
                                   description="where the claimed identity is kept (mode 0600); later starts use it")
    claim_timeout_s: float = Field(default=10.0, gt=0, description="wait this long for an answer to a claim")
    claim_refused_retry_s: float = Field(default=300.0, gt=0, description="claim again this long after a refusal")
    login_refused_wait_s: float = Field(
        default=60.0, ge=0, description="when the broker refuses the stored login, claim again after this long")
    # link = lan: the meter as an ECHONET Lite node on UDP 3610
    meter_address: str = Field(default="", description="the meter's IPv4 or IPv6 address; empty: discover the "
                                                       "0x0288 node by multicast")
    lan_bind: str = Field(default="", description="local address to bind; empty: every IPv4 address (0.0.0.0), "
                                                  "or :: when meter_address is IPv6")
    lan_interface: str | None = Field(default=None, description="interface for multicast (needed for IPv6)")
    lan_port: int = Field(default=3610, ge=0, le=65535, description="ECHONET Lite's UDP port")
    lan_request_timeout_s: float = Field(default=5.0, gt=0, description="one attempt of a LAN request")
    lan_discovery_s: float = Field(default=3.0, gt=0, description="how long discovery collects answers")
    # link = sim: the virtual module's meter
    sim_module: Literal["bp35a1", "bp35c0"] = "bp35c0"
    sim_seed: int = 1
    sim_pv_kw: float = Field(default=5.0, gt=0)
    sim_unhealthy_versions: list[str] = Field(
        default_factory=list, description="link sim, in a simulated fleet (pms up): software versions that fail "
                                          "their health check after an update, so a rollback can be shown")
    sim_installed_at: AwareDatetime | None = Field(
        default=None,
        description="link sim: when the simulated meter was installed; its registers count from then, so a fixed"
                    " time keeps them continuous across restarts (default: 2026-01-01, or 100 days before the"
                    " simulated start when that is earlier)")
    # Development only, beside a sped-up simulated meter (`pms sim --speed --start --anchor-epoch`): a
    # gateway clock that runs sped up from an anchor. Unset in production: the gateway's own (NTP) clock.
    clock_start: AwareDatetime | None = Field(
        default=None, description="development: the gateway's clock reads this at clock_anchor_epoch and runs "
                                  "clock_speed times real time (with link = sim, the simulated meter's too); "
                                  "unset: the gateway's own clock")
    clock_speed: float = Field(default=1.0, gt=0, description="development: how much faster than real time "
                                                              "the clock from clock_start runs")
    clock_anchor_epoch: float | None = Field(
        default=None, description="development: the Unix time at which the clock reads clock_start (give "
                                  "`pms sim --anchor-epoch` the same); unset: when the collector starts")

    @field_validator("firmware_keys")
    @classmethod
    def _keys_parse(cls, keys: list[str]) -> list[str]:
        for number, key in enumerate(keys, 1):
            try:
                firmware.parse_public_key(key)
            except ValueError as exc:
                raise ValueError(f"firmware key {number} is not an Ed25519 public key: {exc}") from None
        return keys

    @model_validator(mode="after")
    def _serial_and_secret_together(self) -> CollectorSettings:
        if (self.gateway_serial is None) != (self.factory_secret is None):
            raise ValueError("gateway_serial and factory_secret go together (PMS_GATEWAY_SERIAL, PMS_FACTORY_SECRET)")
        return self

    @model_validator(mode="after")
    def _sped_up_clock_needs_a_start(self) -> CollectorSettings:
        if self.clock_start is None and (self.clock_speed != 1.0 or self.clock_anchor_epoch is not None):
            raise ValueError("clock_speed and clock_anchor_epoch run a clock from clock_start, which is unset "
                             "(PMS_CLOCK_START)")
        return self

    @model_validator(mode="after")
    def _serial_needs_credentials(self) -> CollectorSettings:
        if self.link == "serial":
            if len(self.broute_id) != 32 or not self.broute_id.isalnum():
                raise ValueError("broute_id must be the 32 letters and digits of the B-route ID (PMS_BROUTE_ID)")
            if not self.broute_password.get_secret_value():
                raise ValueError("broute_password is empty (PMS_BROUTE_PASSWORD)")
        if self.link == "lan":
            for name, value in (("meter_address", self.meter_address), ("lan_bind", self.lan_bind)):
                if value and not _is_ip(value):
                    raise ValueError(f"{name} must be an IPv4 or IPv6 literal, not {value!r} "
                                     f"(PMS_{name.upper()})")
            if self.meter_address and self.lan_bind and _is_ip(self.meter_address, 6) != _is_ip(self.lan_bind, 6):
                raise ValueError(f"meter_address {self.meter_address} and lan_bind {self.lan_bind} are of different "
                                 "IP versions (PMS_METER_ADDRESS, PMS_LAN_BIND)")
            if self.resolved_lan_bind().count(":") and not self.lan_interface:
                raise ValueError("an IPv6 meter needs lan_interface, the interface of its link (ff02::1 is "
                                 "link-local) (PMS_LAN_INTERFACE)")
        return self

    def resolved_lan_bind(self) -> str:
        if self.lan_bind:
            return self.lan_bind
        return "::" if self.meter_address and _is_ip(self.meter_address, 6) else "0.0.0.0"  # noqa: S104

    def resolved_outbox_path(self) -> Path:
        return self.outbox_path or Path("var") / f"outbox-{self.gateway_id}.db"


def _is_ip(text: str, version: int | None = None) -> bool:
    """Whether `text` is an IP literal (an IPv6 zone such as %eth0 allowed), of `version` if given."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return False
    return version is None or address.version == version
