from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pms_common.settings import RegistrySettings


class DeviceManagerSettings(RegistrySettings):
    default_metrics_port: ClassVar[int] = 9105

    missed_heartbeats: int = Field(default=3, ge=1)
    tick_s: float = Field(default=5.0, gt=0)
    control_poll_s: float = Field(default=1.0, gt=0, description="look for new desired configs and queued commands "
                                                                 "in the registry this often")
    command_answer_grace_s: float = Field(default=2.0, ge=0, description="a sent command expires this long after "
                                                                         "its deadline without an answer")
