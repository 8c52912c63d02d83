from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from pms_common.settings import ServiceSettings
from pms_common.topics import GATEWAY_ID_PATTERN


class CollectorSettings(ServiceSettings):
    default_metrics_port: ClassVar[int] = 9101

    gateway_id: str = Field(default="gw-0001", pattern=rf"^{GATEWAY_ID_PATTERN}$")
    meter: Literal["sim"] = Field(default="sim", description="the meter link; serial and udp come with libs/echonet")
    power_interval_s: float = Field(default=60.0, ge=1.0, le=3600.0)
    heartbeat_interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    energy_interval_s: float = Field(default=600.0, ge=10.0, description="E0/E3 periodic read")
    outbox_path: Path | None = Field(default=None, description="default: var/outbox-<gateway_id>.db")
    outbox_max_batches: int = Field(default=200_000, ge=100)
    resend_timeout_s: float = Field(default=15.0, gt=0)
    max_in_flight: int = Field(default=50, ge=1)
    read_timeout_s: float = Field(default=5.0, gt=0)
    firmware: str = "pms-collector/0.1.0"
    sim_seed: int = 1
    sim_pv_kw: float = Field(default=5.0, gt=0)

    def resolved_outbox_path(self) -> Path:
        return self.outbox_path or Path("var") / f"outbox-{self.gateway_id}.db"
