"""Publishes each registered plant's weather, as 30-minute slots (retained: the newest is the topic's
last), at a fixed interval. Each round asks the provider for the slots of the last
`weather_lookback_h` hours up to the slot now in progress, and publishes only those it has not
published with the same values (a forecast that changed, or stale data replaced by fresh, goes out
again; the store keeps the last). After the weather, each plant's expected energy for the slots just
published goes out on `pms/v1/plants/{service_code}/expected` (pms_weather.expected)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from prometheus_client import Counter

from pms_common import timeutil, topics
from pms_common.health import Health
from pms_common.messages import ExpectedYield, Weather
from pms_common.mqtt import Backoff, BrokerAddress, run_connected
from pms_registry import Registry, RegistryError
from pms_registry.records import Plant
from pms_weather.expected import expected_yields
from pms_weather.providers.base import Location, WeatherProvider
from pms_weather.providers.clearsky import slot_end_at_or_after
from pms_weather.providers.factory import make_provider
from pms_weather.settings import WeatherSettings

log = logging.getLogger(__name__)
PUBLISHED = Counter("pms_weather_published_total", "Weather observations published")
EXPECTED_PUBLISHED = Counter("pms_weather_expected_published_total",
                             "Expected-yield messages published (one per plant and round with new weather)")
SKIPPED = Counter("pms_weather_plants_without_location_total", "Plant rounds skipped for lack of a location")


class WeatherService:
    def __init__(self, settings: WeatherSettings, registry: Registry, health: Health,
                 provider: WeatherProvider | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.health = health
        self.broker = BrokerAddress.parse(settings.mqtt_url)
        self.provider = provider or make_provider(settings)
        self._published: dict[tuple[str, datetime], Weather] = {}
        # The last round's plants and fetched series: what the expected yield is computed from.
        self._plants: dict[str, Plant] = {}
        self._series: dict[str, list[Weather]] = {}

    def locations(self) -> list[Location]:
        found = []
        self._plants = {}
        for plant in self.registry.list_plants():
            if plant.latitude is None or plant.longitude is None:
                SKIPPED.inc()
                continue
            self._plants[plant.service_code] = plant
            found.append(Location(plant.service_code, plant.latitude, plant.longitude))
        return found

    def observations(self, now: datetime | None = None) -> list[Weather]:
        """The slots to publish this round, oldest first per plant."""
        now = now or timeutil.now_jst()
        end = slot_end_at_or_after(now)
        start = end - timedelta(hours=self.settings.weather_lookback_h)
        fetched = self.provider.fetch(self.locations(), start, end)
        if fetched.problem:
            log.warning("weather: %s: publishing stale stand-ins where nothing fresh is known", fetched.problem)
        self._series = fetched.series
        self._published = {key: w for key, w in self._published.items() if key[1] > start}
        new = []
        for code, series in fetched.series.items():
            for weather in series:
                key = (code, weather.observed_at)
                if self._published.get(key) != weather:
                    new.append(weather)
        return new

    def published(self, weather: Weather) -> None:
        self._published[(weather.service_code, weather.observed_at)] = weather

    def expected(self, published: list[Weather], now: datetime | None = None) -> list[ExpectedYield]:
        """The expected energy of the slots whose weather was published, per plant (registry read)."""
        if not published:
            return []
        entered = self.registry.plant_pvs(sorted({w.service_code for w in published}))
        return expected_yields(self._plants, entered, self._series, published, now or timeutil.now_jst())

    async def publish_round(self, publish: Callable[[str, bytes], Awaitable[None]], stop: asyncio.Event) -> int:
        """One round: what is new, published one by one (QoS 1, retained) until `stop`; returns how many.

        A stop ends the round at once: a first round of a thousand plants is thousands of messages,
        each awaiting its PUBACK, and `pms up`'s stop waited for them. What is left goes out on the
        next start (only what was published is remembered as published)."""
        try:
            batch = await asyncio.to_thread(self.observations)
            self.health.set("registry", True)
        except RegistryError as exc:
            log.error("weather: cannot list plants: %s", exc)
            self.health.set("registry", False)
            return 0
        published: list[Weather] = []
        for weather in batch:
            if stop.is_set():
                break
            await publish(topics.weather(weather.service_code), weather.to_json())
            self.published(weather)
            PUBLISHED.inc()
            published.append(weather)
        await self._publish_expected(publish, stop, published)
        return len(published)

    async def _publish_expected(self, publish: Callable[[str, bytes], Awaitable[None]], stop: asyncio.Event,
                                published: list[Weather]) -> None:
        # The model costs ~35 ms a plant-day (bench/expected_yield.py): off the event loop.
        try:
            expectations = await asyncio.to_thread(self.expected, published)
        except RegistryError as exc:
            # The weather is out; the expectation of these slots waits for their next publication.
            log.error("weather: cannot read the plants' PV parameters for the expected yield: %s", exc)
            self.health.set("registry", False)
            return
        for expectation in expectations:
            if stop.is_set():
                break
            await publish(topics.expected(expectation.service_code), expectation.to_json())
            EXPECTED_PUBLISHED.inc()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()

        async def session() -> None:
            async with self.broker.client(identifier=self.settings.mqtt_client_id or "pms-weather") as client:
                backoff.reset()
                self.health.set("mqtt", True)
                try:
                    async def publish(topic: str, payload: bytes) -> None:
                        await client.publish(topic, payload, qos=1, retain=True)

                    while not stop.is_set():
                        await self.publish_round(publish, stop)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), timeout=self.settings.interval_s)
                finally:
                    self.health.set("mqtt", False)

        self.health.set("mqtt", False)
        await run_connected("weather", session, backoff=backoff)
