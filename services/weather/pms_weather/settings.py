from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from pms_common.settings import RegistrySettings


class WeatherSettings(RegistrySettings):
    default_metrics_port: ClassVar[int] = 9104

    interval_s: float = Field(default=600.0, ge=1.0, description="how often each plant's weather is published")
