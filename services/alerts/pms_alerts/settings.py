from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from pms_alerts.notify.settings import NotifySettings
from pms_common.settings import RegistrySettings


class AlertsSettings(NotifySettings, RegistrySettings):
    default_metrics_port: ClassVar[int] = 9103

    missed_heartbeats: int = Field(default=3, ge=1, description="silent heartbeat intervals before offline")
    tick_s: float = Field(default=5.0, gt=0)
    tsdb_url: str = Field(default="sqlite:///var/pms-ts.db", description="read by the billing-start and anomaly rules")
    billing_check_s: float = Field(default=60.0, gt=0, description="how often undecided billing starts are checked")
    anomaly_check_s: float = Field(default=60.0, gt=0, description="how often new register anomalies are logged")
    evaluate_s: float = Field(default=15.0, gt=0, description="how often every alert rule is evaluated")
    rules_refresh_s: float = Field(default=60.0, gt=0, description="how often plants, scopes and rules are reloaded")
    # FOR TESTS ONLY: read the current time from this file (ISO 8601 with an offset), so a scripted test
    # steps simulated time through liveness, the rules and the notifier.
    alerts_clock_file: Path | None = None
