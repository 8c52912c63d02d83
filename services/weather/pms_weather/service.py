"""Publishes each registered plant's irradiance estimate (retained) at a fixed interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import Counter

from pms_common import timeutil, topics
from pms_common.health import Health
from pms_common.messages import Weather
from pms_common.mqtt import Backoff, BrokerAddress, run_connected
from pms_registry import Registry, RegistryError
from pms_weather.clearsky import clear_sky_ghi
from pms_weather.settings import WeatherSettings

log = logging.getLogger(__name__)
PUBLISHED = Counter("pms_weather_published_total", "Weather observations published")
SKIPPED = Counter("pms_weather_plants_without_location_total", "Plant rounds skipped for lack of a location")


class WeatherService:
    def __init__(self, settings: WeatherSettings, registry: Registry, health: Health) -> None:
        self.settings = settings
        self.registry = registry
        self.health = health
        self.broker = BrokerAddress.parse(settings.mqtt_url)

    def observations(self) -> list[Weather]:
        now = timeutil.now_jst().replace(microsecond=0)
        found = []
        for plant in self.registry.list_plants():
            if plant.latitude is None or plant.longitude is None:
                SKIPPED.inc()
                continue
            found.append(Weather(service_code=plant.service_code, observed_at=now, source="clear-sky",
                                 ghi_w_m2=clear_sky_ghi(now, plant.latitude, plant.longitude)))
        return found

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()

        async def session() -> None:
            async with self.broker.client(identifier=self.settings.mqtt_client_id or "pms-weather") as client:
                backoff.reset()
                self.health.set("mqtt", True)
                try:
                    while not stop.is_set():
                        try:
                            batch = await asyncio.to_thread(self.observations)
                            self.health.set("registry", True)
                        except RegistryError as exc:
                            log.error("weather: cannot list plants: %s", exc)
                            self.health.set("registry", False)
                            batch = []
                        for weather in batch:
                            await client.publish(topics.weather(weather.service_code), weather.to_json(),
                                                 qos=1, retain=True)
                            PUBLISHED.inc()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), timeout=self.settings.interval_s)
                finally:
                    self.health.set("mqtt", False)

        self.health.set("mqtt", False)
        await run_connected("weather", session, backoff=backoff)
