"""The Open-Meteo providers against a local server that answers in the API's documented format:
batching, caching, the daily budget, backoff, stale marking, nulls and glitches, the conventions."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pms_common.timeutil import JST
from pms_weather.budget import CallBudget
from pms_weather.providers.base import Location
from pms_weather.providers.open_meteo import OpenMeteoProvider, RetryPolicy
from pms_weather.providers.open_meteo_format import Query

from .open_meteo_server import OpenMeteoStandIn, Reply, serving, sunny

DAY = datetime(2026, 6, 1, tzinfo=JST)
TOKYO = Location("pss00000001", 35.6812, 139.7671)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def plants(n: int) -> list[Location]:
    return [Location(f"pss{i + 1:08d}", 35.0 + i * 0.1, 139.0 + i * 0.1) for i in range(n)]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def stand_in() -> Iterator[OpenMeteoStandIn]:
    with serving(OpenMeteoStandIn(today=DAY)) as server:
        yield server


def provider(server: OpenMeteoStandIn, tmp_path: Path, *, name: str = "open-meteo", clock: Clock | None = None,
             budget: int = 10_000, batch_size: int = 50, minutely_15: bool = False, azimuth: float = 180.0,
             sleeps: list[float] | None = None, retries: int = 3) -> OpenMeteoProvider:
    model = "jma_seamless" if name == "open-meteo-jma" else "best_match"
    return OpenMeteoProvider(
        name, base_url=server.url + "/", batch_size=batch_size,
        query=Query(tilt_deg=20, azimuth_pvlib_deg=azimuth, model=model, minutely_15=minutely_15),
        budget=CallBudget(tmp_path / "budget.json", budget), clock=clock or Clock(at(13, 10)),
        retry=RetryPolicy(retries, 2.0, 60.0), sleep=(sleeps if sleeps is not None else []).append,
        rng=random.Random(7),
    )


def test_plants_are_batched_into_few_requests(stand_in: OpenMeteoStandIn, tmp_path: Path) -> None:
    fetched = provider(stand_in, tmp_path, batch_size=3).fetch(plants(7), at(12), at(13, 30))
    assert len(stand_in.requests) == 3  # ceil(7 / 3)
    assert [len(q["latitude"].split(",")) for _, q in stand_in.requests] == [3, 3, 1]
    assert stand_in.requests[0][1]["latitude"] == "35.0000,35.1000,35.2000"
    assert fetched.problem is None
    assert sorted(fetched.series) == [p.service_code for p in plants(7)]
    # Each plant got its own location's answer (the list is in the order asked).
    assert all(len(series) == 3 and not any(w.stale for w in series) for series in fetched.series.values())


def test_the_query_names_the_variables_the_endpoint_and_the_azimuth_in_open_meteos_convention(
    stand_in: OpenMeteoStandIn, tmp_path: Path
) -> None:
    fetched = provider(stand_in, tmp_path, name="open-meteo-jma", azimuth=90.0).fetch([TOKYO], at(12), at(13))
    path, query = stand_in.requests[0]
    assert path == "/v1/jma"
    assert query["azimuth"] == "-90"  # an east-facing panel: pvlib 90°, Open-Meteo −90°
    assert query["tilt"] == "20"
    assert query["models"] == "jma_seamless"
    assert query["timeformat"] == "unixtime" and query["timezone"] == "Asia/Tokyo"
    assert set(query["hourly"].split(",")) >= {"temperature_2m", "cloud_cover", "weather_code", "shortwave_radiation",
                                                "direct_normal_irradiance", "diffuse_radiation",
                                                "global_tilted_irradiance"}
    w = fetched.series[TOKYO.service_code][-1]
    assert (w.source, w.model, w.stale) == ("open-meteo-jma", "jma_seamless", False)


def test_the_hour_stamped_13_00_fills_the_slots_ending_12_30_and_13_00(
    stand_in: OpenMeteoStandIn, tmp_path: Path
) -> None:
    def hour(lat: float, lon: float, end: datetime) -> dict[str, Any]:
        values = {12: 400.0, 13: 600.0, 14: 800.0}
        return dict(sunny(lat, lon, end), shortwave_radiation=values.get(end.hour, 0.0),
                    temperature_2m=float(end.hour) + 8.0, cloud_cover=end.hour * 2, weather_code=end.hour % 4)

    stand_in.hourly = hour
    fetched = provider(stand_in, tmp_path, clock=Clock(at(14, 5))).fetch([TOKYO], at(11, 30), at(14))
    got = {w.observed_at: (w.ghi_w_m2, w.temperature_c, w.cloud_cover_pct, w.weather_code)
           for w in fetched.series[TOKYO.service_code]}
    assert got == {
        at(12): (400.0, 20.0, 24.0, 0),  # 11:00–12:00 mean stamped 12:00
        at(12, 30): (600.0, 20.5, 25.0, 1),  # the 13:00 value (12:00–13:00); temperature between 20 and 21
        at(13): (600.0, 21.0, 26.0, 1),
        at(13, 30): (800.0, 21.5, 27.0, 2),
        at(14): (800.0, 22.0, 28.0, 2),
    }


def test_quarter_hours_are_used_where_the_model_offers_them(stand_in: OpenMeteoStandIn, tmp_path: Path) -> None:
    def quarter(lat: float, lon: float, end: datetime) -> dict[str, Any]:
        ghi = {(12, 15): 500.0, (12, 30): 700.0}.get((end.hour, end.minute))
        return {"shortwave_radiation": ghi, "direct_normal_irradiance": None, "diffuse_radiation": None,
                "global_tilted_irradiance": None}

    stand_in.quarter_hourly = quarter
    fetched = provider(stand_in, tmp_path, minutely_15=True).fetch([TOKYO], at(12), at(13))
    assert "shortwave_radiation" in stand_in.requests[0][1]["minutely_15"]
    by_end = {w.observed_at: w.ghi_w_m2 for w in fetched.series[TOKYO.service_code]}
    hourly_13 = sunny(0, 0, at(13))["shortwave_radiation"]
    assert by_end == {at(12, 30): 600.0, at(13): hourly_13}  # (500 + 700) / 2; 12:45–13:00 null → the hour's


def test_a_second_round_in_the_same_hour_asks_nothing(stand_in: OpenMeteoStandIn, tmp_path: Path) -> None:
    clock = Clock(at(13, 5))
    weather = provider(stand_in, tmp_path, clock=clock)
    hits = metric("pms_weather_cache_hits_total")
    first = weather.fetch(plants(4), at(12), at(13, 30))
    assert len(stand_in.requests) == 1
    clock.now = at(13, 55)
    assert weather.fetch(plants(4), at(12), at(14)).series[plants(1)[0].service_code][-1].observed_at == at(14)
    assert len(stand_in.requests) == 1  # cached per location and hour
    assert metric("pms_weather_cache_hits_total") - hits == 4
    assert first.series == weather.fetch(plants(4), at(12), at(13, 30)).series
    clock.now = at(14, 0)
    weather.fetch(plants(4), at(12), at(14))
    assert len(stand_in.requests) == 2  # a new hour, a new forecast


def test_the_daily_budget_stops_requests_says_so_and_survives_a_restart(
    stand_in: OpenMeteoStandIn, tmp_path: Path
) -> None:
    refused = metric("pms_weather_budget_refused_total")
    clock = Clock(at(13, 5))
    fetched = provider(stand_in, tmp_path, budget=5, batch_size=3, clock=clock).fetch(plants(7), at(12), at(13))
    assert len(stand_in.requests) == 1  # 3 calls spent; the next batch of 3 would pass 5
    assert fetched.problem is not None and "daily budget of 5 provider calls is spent (3 used on 2026-06-01" in fetched.problem
    assert metric("pms_weather_budget_refused_total") - refused == 1
    assert metric("pms_weather_budget_used_calls") == 3
    stale = [code for code, series in fetched.series.items() if all(w.stale for w in series)]
    assert stale == [p.service_code for p in plants(7)[3:]]
    assert {w.source for code in stale for w in fetched.series[code]} == {"clear-sky"}
    # A restart does not hand out the day's calls again.
    restarted = provider(stand_in, tmp_path, budget=5, batch_size=3, clock=Clock(at(15)))
    assert restarted.budget.used(at(15)) == 3
    restarted.fetch(plants(7)[3:6], at(14), at(15))
    assert len(stand_in.requests) == 1
    # The next JST day (midnight JST is 15:00 UTC) starts afresh.
    tomorrow = Clock(at(24, 0))
    again = provider(stand_in, tmp_path, budget=5, batch_size=3, clock=tomorrow)
    assert again.budget.used(tomorrow.now) == 0
    again.fetch(plants(3), at(23), at(24))
    assert len(stand_in.requests) == 2


def test_429_and_5xx_are_retried_with_growing_jittered_delays(stand_in: OpenMeteoStandIn, tmp_path: Path) -> None:
    stand_in.replies = [Reply(429, {"error": True, "reason": "Minutely API request limit exceeded"}),
                        Reply(503, None), Reply(502, None, {"Retry-After": "7"})]
    sleeps: list[float] = []
    before = metric("pms_weather_provider_requests_total", outcome="http_429")
    fetched = provider(stand_in, tmp_path, sleeps=sleeps).fetch([TOKYO], at(12), at(13))
    assert len(stand_in.requests) == 4
    assert fetched.problem is None and not fetched.series[TOKYO.service_code][0].stale
    assert 1.0 <= sleeps[0] <= 2.0 and 2.0 <= sleeps[1] <= 4.0  # 2 s then 4 s steps, half to all of each
    assert sleeps[2] == 7.0  # the server's Retry-After wins
    assert metric("pms_weather_provider_requests_total", outcome="http_429") - before == 1


def test_a_provider_that_stays_down_leaves_last_hours_data_marked_stale(
    stand_in: OpenMeteoStandIn, tmp_path: Path
) -> None:
    clock = Clock(at(12, 5))
    sleeps: list[float] = []
    weather = provider(stand_in, tmp_path, clock=clock, sleeps=sleeps, retries=2)
    fresh = weather.fetch([TOKYO], at(11), at(12, 30)).series[TOKYO.service_code]
    clock.now = at(13, 5)
    stand_in.replies = [Reply(500, None)] * 3
    newcomer = Location("pss00000099", 34.69, 135.50)
    fetched = weather.fetch([TOKYO, newcomer], at(11), at(13))
    assert len(stand_in.requests) == 1 + 3 and len(sleeps) == 2  # 1 try + 2 retries
    assert fetched.problem == "open-meteo answered HTTP 500: Internal Server Error (after 3 attempts)"
    tokyo = fetched.series[TOKYO.service_code]
    assert all(w.stale and w.source == "open-meteo" for w in tokyo)
    assert [w.ghi_w_m2 for w in tokyo[:3]] == [w.ghi_w_m2 for w in fresh]  # last hour's forecast stands in
    assert all(w.stale and w.source == "clear-sky" for w in fetched.series[newcomer.service_code])
    assert metric("pms_weather_stale_plants") == 2
    clock.now = at(14, 5)  # back up: fresh again
    assert not any(w.stale for w in weather.fetch([TOKYO], at(13), at(14)).series[TOKYO.service_code])
    assert metric("pms_weather_stale_plants") == 0


def test_a_refused_request_is_not_retried_and_says_why(stand_in: OpenMeteoStandIn, tmp_path: Path) -> None:
    stand_in.replies = [Reply(400, {"error": True, "reason": "Parameter 'tilt' must be between 0 and 90"})]
    fetched = provider(stand_in, tmp_path).fetch([TOKYO], at(12), at(13))
    assert len(stand_in.requests) == 1
    assert fetched.problem == "open-meteo answered HTTP 400: Parameter 'tilt' must be between 0 and 90"


def test_nulls_and_glitches_are_skipped_clamped_or_dropped_and_counted(
    stand_in: OpenMeteoStandIn, tmp_path: Path
) -> None:
    def glitchy(lat: float, lon: float, end: datetime) -> dict[str, Any]:
        base = sunny(lat, lon, end)
        if end.hour == 11:
            return dict(base, shortwave_radiation=None, temperature_2m=None)  # the model has no value
        if end.hour == 12:
            return dict(base, global_tilted_irradiance=-966.1, diffuse_radiation=-2.0)
        if end.hour == 13:
            return dict(base, shortwave_radiation=5000.0)
        return base

    stand_in.hourly = glitchy
    dropped = metric("pms_weather_values_corrected_total", variable="global_tilted_irradiance", action="dropped")
    clamped = metric("pms_weather_values_corrected_total", variable="shortwave_radiation", action="clamped")
    missing = metric("pms_weather_slots_without_ghi_total")
    series = provider(stand_in, tmp_path).fetch([TOKYO], at(10), at(13)).series[TOKYO.service_code]
    by_end = {w.observed_at: w for w in series}
    assert sorted(by_end) == [at(11, 30), at(12), at(12, 30), at(13)]  # slots ending 10:30 and 11:00: no GHI
    assert by_end[at(11, 30)].gti_w_m2 is None and by_end[at(11, 30)].dhi_w_m2 == 0.0
    assert 1900 < by_end[at(12, 30)].ghi_w_m2 < 1990  # clamped to 1.5 × extraterrestrial
    assert metric("pms_weather_values_corrected_total", variable="global_tilted_irradiance",
                  action="dropped") - dropped == 2
    assert metric("pms_weather_values_corrected_total", variable="shortwave_radiation", action="clamped") - clamped == 2
    assert metric("pms_weather_slots_without_ghi_total") - missing == 2
    assert by_end[at(12)].temperature_c == 21.0  # temperature filled


def test_an_answer_in_another_format_is_a_clear_problem(stand_in: OpenMeteoStandIn, tmp_path: Path) -> None:
    stand_in.replies = [Reply(200, {"latitude": 35.7, "longitude": 139.8, "hourly": {"time": "soon"}})]
    fetched = provider(stand_in, tmp_path).fetch([TOKYO], at(12), at(13))
    assert fetched.problem is not None and fetched.problem.startswith("open-meteo answered in an unknown format")
    assert all(w.stale for w in fetched.series[TOKYO.service_code])


def test_a_longer_cache_period_saves_calls(stand_in: OpenMeteoStandIn, tmp_path: Path) -> None:
    clock = Clock(at(12, 5))
    weather = provider(stand_in, tmp_path, clock=clock)
    weather.refresh_s = 3 * 3600  # PMS_WEATHER_REFRESH_H=3: blocks 12:00–15:00 JST (03:00–06:00 UTC)
    weather.fetch([TOKYO], at(11), at(12, 30))
    clock.now = at(14, 55)
    assert not any(w.stale for w in weather.fetch([TOKYO], at(14), at(15)).series[TOKYO.service_code])
    assert len(stand_in.requests) == 1
    clock.now = at(15, 5)
    weather.fetch([TOKYO], at(14), at(15, 30))
    assert len(stand_in.requests) == 2
