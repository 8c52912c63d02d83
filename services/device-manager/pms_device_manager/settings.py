from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pms_common.settings import RegistrySettings


class DeviceManagerSettings(RegistrySettings):
    default_metrics_port: ClassVar[int] = 9105

    missed_heartbeats: int = Field(default=3, ge=1)
    tick_s: float = Field(default=5.0, gt=0)
