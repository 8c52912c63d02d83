"""The provider the settings name."""

from __future__ import annotations

from pms_weather.budget import CallBudget
from pms_weather.providers.base import WeatherProvider
from pms_weather.providers.clearsky import ClearSkyProvider
from pms_weather.providers.open_meteo import ENDPOINTS, OpenMeteoProvider, RetryPolicy
from pms_weather.providers.open_meteo_format import Query
from pms_weather.settings import WeatherSettings


def make_provider(settings: WeatherSettings) -> WeatherProvider:
    name = settings.weather_provider
    if name == "clear-sky":
        return ClearSkyProvider()
    query = Query(
        tilt_deg=settings.weather_tilt_deg,
        azimuth_pvlib_deg=settings.weather_azimuth_deg,
        model=settings.weather_model or ENDPOINTS[name][1],
        minutely_15=settings.weather_minutely_15,
        api_key=settings.weather_api_key,
    )
    return OpenMeteoProvider(
        name,
        base_url=settings.weather_base_url,
        query=query,
        budget=CallBudget(settings.weather_budget_path, settings.weather_daily_call_budget),
        batch_size=settings.weather_batch_size,
        refresh_h=settings.weather_refresh_h,
        timeout_s=settings.weather_timeout_s,
        retry=RetryPolicy(settings.weather_retries, settings.weather_backoff_s, settings.weather_backoff_max_s),
    )
