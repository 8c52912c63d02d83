from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from pms_common.settings import RegistrySettings

ProviderName = Literal["clear-sky", "open-meteo", "open-meteo-jma"]


class WeatherSettings(RegistrySettings):
    default_metrics_port: ClassVar[int] = 9104

    interval_s: float = Field(default=600.0, ge=1.0, description="how often each plant's weather is published")
    weather_provider: ProviderName = Field(
        default="clear-sky", description="clear-sky (offline model), open-meteo (forecast API) or open-meteo-jma"
    )
    weather_base_url: str = Field(
        default="https://api.open-meteo.com",
        description="Open-Meteo's base URL: a self-hosted instance or a paid endpoint (customer-api...)",
    )
    weather_api_key: str | None = Field(default=None, description="sent as `apikey` (paid Open-Meteo plans)")
    weather_model: str | None = Field(
        default=None, description="Open-Meteo `models` value; default best_match (forecast) or jma_seamless (JMA)"
    )
    weather_refresh_h: int = Field(default=1, ge=1, le=24,
                                   description="hours a location's answer is reused (the cache period)")
    weather_batch_size: int = Field(default=50, ge=1, le=1000, description="plant locations per request")
    weather_daily_call_budget: int = Field(default=10_000, ge=1, description="provider calls per JST day")
    weather_budget_path: Path = Field(default=Path("var/weather-budget.json"),
                                      description="where the day's call count is kept across restarts")
    weather_minutely_15: bool = Field(default=False, description="also ask for 15-minutely radiation")
    weather_tilt_deg: float = Field(default=20.0, ge=0, le=90, description="panel tilt for global tilted irradiance")
    weather_azimuth_deg: float = Field(
        default=180.0, ge=0, lt=360, description="panel azimuth, pvlib convention (180 = south)"
    )
    weather_lookback_h: int = Field(default=24, ge=1, le=72, description="hours of past slots published")
    weather_timeout_s: float = Field(default=20.0, gt=0)
    weather_retries: int = Field(default=3, ge=0, le=10, description="retries after a 429, 5xx or network error")
    weather_backoff_s: float = Field(default=2.0, gt=0, description="first retry delay (doubles, with jitter)")
    weather_backoff_max_s: float = Field(default=60.0, gt=0)
