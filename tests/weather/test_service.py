"""The weather service's rounds: registered plants → provider slots → only what is new is published."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pms_common.health import Health
from pms_common.timeutil import JST
from pms_registry import Registry
from pms_weather.providers.clearsky import slot_end_at_or_after
from pms_weather.service import WeatherService
from pms_weather.settings import WeatherSettings

from .open_meteo_server import OpenMeteoStandIn, serving

NOW = datetime(2026, 6, 1, 13, 10, tzinfo=JST)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(f"sqlite:///{tmp_path / 'pms.db'}")
    registry.migrate()
    yield registry
    registry.close()


def test_a_round_publishes_the_slots_of_the_lookback_then_only_new_ones(registry: Registry, tmp_path: Path) -> None:
    registry.ensure_customer("C1", "demo")
    located = registry.create_plant(customer_id="C1", name="A", address="x", phone="0", created_at=NOW,
                                    latitude=35.68, longitude=139.77)
    registry.create_plant(customer_id="C1", name="B", address="x", phone="0", created_at=NOW)  # no location
    settings = WeatherSettings(registry_url="sqlite:///unused", weather_lookback_h=3,
                               weather_budget_path=tmp_path / "budget.json")
    service = WeatherService(settings, registry, Health())
    first = service.observations(NOW)
    # Three hours back from the slot in progress (ending 13:30), slot ends in JST.
    assert [w.observed_at.strftime("%H:%M") for w in first] == ["11:00", "11:30", "12:00", "12:30", "13:00", "13:30"]
    assert {w.service_code for w in first} == {located}
    assert all(w.source == "clear-sky" and w.model == "haurwitz" and w.ghi_w_m2 > 0 for w in first)
    for weather in first:
        service.published(weather)
    assert service.observations(NOW + timedelta(minutes=5)) == []  # nothing new within the slot
    later = service.observations(NOW + timedelta(minutes=25))
    assert [w.observed_at for w in later] == [slot_end_at_or_after(NOW + timedelta(minutes=25))]


def test_the_settings_choose_open_meteo_at_the_configured_base_url(registry: Registry, tmp_path: Path) -> None:
    registry.ensure_customer("C1", "demo")
    code = registry.create_plant(customer_id="C1", name="A", address="x", phone="0", created_at=NOW,
                                 latitude=35.68, longitude=139.77)
    with serving(OpenMeteoStandIn(today=NOW.replace(hour=0, minute=0))) as stand_in:
        settings = WeatherSettings(registry_url="sqlite:///unused", weather_provider="open-meteo-jma",
                                   weather_base_url=stand_in.url, weather_lookback_h=1, weather_azimuth_deg=200,
                                   weather_budget_path=tmp_path / "budget.json")
        service = WeatherService(settings, registry, Health())
        try:
            found = service.observations(NOW)
        finally:
            service.provider.close()
    assert [(path, query["azimuth"]) for path, query in stand_in.requests] == [("/v1/jma", "20")]
    assert [(w.service_code, w.observed_at.strftime("%H:%M"), w.source, w.model, w.stale) for w in found] == [
        (code, "13:00", "open-meteo-jma", "jma_seamless", False), (code, "13:30", "open-meteo-jma", "jma_seamless", False)]
    assert all(w.temperature_c is not None and w.dni_w_m2 is not None for w in found)
    assert json.loads((tmp_path / "budget.json").read_text())["calls"] == 1  # one location, 7 variables


def test_a_stop_ends_a_round_at_once_and_the_rest_goes_out_next_time(registry: Registry, tmp_path: Path) -> None:
    """A round of many plants is many publishes, each awaiting its PUBACK: a stop must not wait for them all."""
    registry.ensure_customer("C1", "demo")
    for index in range(5):
        registry.create_plant(customer_id="C1", name=f"P{index}", address="x", phone="0", created_at=NOW,
                              latitude=35.68, longitude=139.77)
    settings = WeatherSettings(registry_url="sqlite:///unused", weather_lookback_h=1,
                               weather_budget_path=tmp_path / "budget.json")
    service = WeatherService(settings, registry, Health())
    due = len(service.observations())  # two or three slots a plant, by the time of day
    stop = asyncio.Event()
    sent: list[str] = []

    async def publish(topic: str, payload: bytes) -> None:
        sent.append(topic)
        if len(sent) == 2:
            stop.set()  # Ctrl-C on pms up, two plants into the round

    assert asyncio.run(service.publish_round(publish, stop)) == 2
    assert asyncio.run(service.publish_round(publish, asyncio.Event())) == due - 2  # the next start: the rest
    weather = [topic for topic in sent if topic.endswith("/weather")]
    assert len(weather) == due and len(set(weather)) == 5
