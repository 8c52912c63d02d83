from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pms_common.settings import StoreSettings


class IngestSettings(StoreSettings):
    default_metrics_port: ClassVar[int] = 9102

    share_group: str | None = Field(
        default=None, description="subscribe as $share/<group>/... so replicas split the load (Mosquitto, EMQX)"
    )
    persistent_session: bool = Field(default=True, description="keep queued readings while ingest is down")
