"""`pms weather`: publish per-plant irradiance estimates."""

from __future__ import annotations

import asyncio

from pms_common.health import Health
from pms_common.service import run_service
from pms_registry import Registry
from pms_weather.service import WeatherService
from pms_weather.settings import WeatherSettings


def main(settings: WeatherSettings | None = None) -> int:
    settings = settings or WeatherSettings()
    health = Health()

    async def serve(stop: asyncio.Event) -> None:
        registry = Registry(settings.registry_url)
        registry.prepare(migrate=settings.registry_migrate)
        service = WeatherService(settings, registry, health)
        try:
            await service.run(stop)
        finally:
            service.provider.close()
            registry.close()

    return run_service("weather", settings, health, serve)
