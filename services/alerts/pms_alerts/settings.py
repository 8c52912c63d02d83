from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pms_common.settings import RegistrySettings


class AlertsSettings(RegistrySettings):
    default_metrics_port: ClassVar[int] = 9103

    missed_heartbeats: int = Field(default=3, ge=1, description="silent heartbeat intervals before offline")
    tick_s: float = Field(default=5.0, gt=0)
    tsdb_url: str = Field(default="sqlite:///var/pms-ts.db", description="read by the billing-start and anomaly rules")
    billing_check_s: float = Field(default=60.0, gt=0, description="how often undecided billing starts are checked")
    anomaly_check_s: float = Field(default=60.0, gt=0, description="how often new register anomalies are logged")
