"""The weather service's expected yield: the API's figures for the same weather, parameters and calibration."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from pms_api.expected import ExpectedFigures
from pms_common.health import Health
from pms_common.messages import ExpectedYield, Weather
from pms_common.timeutil import JST
from pms_registry import Registry
from pms_store.sqlite import SqliteStore
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


def _round(service: WeatherService) -> tuple[list[Weather], list[ExpectedYield]]:
    sent: list[tuple[str, bytes]] = []

    async def publish(topic: str, payload: bytes) -> None:
        sent.append((topic, payload))

    asyncio.run(service.publish_round(publish, asyncio.Event()))
    weather = [Weather.model_validate_json(p) for t, p in sent if t.endswith("/weather")]
    expected = [ExpectedYield.model_validate_json(p) for t, p in sent if t.endswith("/expected")]
    assert all(t == f"pms/v1/plants/{e.service_code}/expected" for (t, _), e in
               zip([s for s in sent if s[0].endswith("/expected")], expected, strict=True))
    return weather, expected


@pytest.mark.parametrize("provider", ["open-meteo", "clear-sky"])
def test_the_published_expectation_is_the_apis_for_the_same_inputs(
        registry: Registry, tmp_path: Path, provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    registry.ensure_customer("C1", "demo")
    entered = registry.create_plant(customer_id="C1", name="A", address="x", phone="0", created_at=NOW,
                                    latitude=35.68, longitude=139.77, capacity_kw=49.5)
    registry.set_plant_pv(entered, dc_kw=60.0, tilt_deg=10.0, azimuth_deg=200.0)
    registry.set_calibration(entered, 0.93, NOW, 12)
    defaults = registry.create_plant(customer_id="C1", name="B", address="x", phone="0", created_at=NOW,
                                     latitude=34.7, longitude=135.5, capacity_kw=10.0)
    monkeypatch.setattr("pms_common.timeutil.now_jst", lambda: NOW)
    with serving(OpenMeteoStandIn(today=NOW.replace(hour=0, minute=0))) as stand_in:
        settings = WeatherSettings(registry_url="sqlite:///unused", weather_provider=provider,
                                   weather_base_url=stand_in.url, weather_lookback_h=3,
                                   weather_budget_path=tmp_path / "budget.json")
        service = WeatherService(settings, registry, Health())
        try:
            weather, expected = _round(service)
        finally:
            service.provider.close()
    assert {e.service_code for e in expected} == {entered, defaults}
    store = SqliteStore(tmp_path / "ts.db")
    try:
        store.write_weather(weather)  # what ingest stores of the round
        api = ExpectedFigures(registry, store, series=None)  # type: ignore[arg-type]  # slots() reads no series
        for message in expected:
            plant = registry.get_plant(message.service_code)
            assert plant is not None
            params = api.parameters(plant)[0]
            assert message.calibration == params.calibration == (0.93 if plant.service_code == entered else 1.0)
            by_end = {s.slot_end: s for s in api.slots(plant, params, NOW.date(), NOW.date())}
            published = [w.observed_at for w in weather if w.service_code == message.service_code]
            assert [s.slot_end for s in message.slots] == published  # the six slots of the round, 11:00 … 13:30
            assert len(published) == 6
            assert [(s.expected_kwh, s.source) for s in message.slots] == [
                (by_end[s.slot_end].expected_kwh, by_end[s.slot_end].source) for s in message.slots]
            assert any(s.expected_kwh > 0.5 for s in message.slots)  # midday in June: real figures
    finally:
        store.close()
