"""The expected-yield endpoints: PV parameters, calibration, the expected series in JSON and CSV, and
the performance ratio in the cross-plant list; real SQLite registry and store."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest

from pms_api import plant_figures
from pms_api.expected import RATIOS_DEFERRED
from pms_common import timeutil
from pms_common.messages import EnergyReading, Weather
from pms_pv import default_parameters, expected_slots
from tests.api.conftest import PROBLEM, Api

YESTERDAY = date(2026, 6, 16)  # PINNED_NOON is 2026-06-17 12:00 JST


def sell_share_of_clear_sky(api: Api, first: date, days: int, share: float, overcast_every: int = 0,
                            gateway_id: str = "gw-a") -> None:
    """gw-a's registers for `days` days from `first`: it sells `share` of plant a's clear-sky expectation
    (every `overcast_every`-th day a third of that), slot by slot."""
    start = timeutil.day_start(first)
    ends = [start + timeutil.SLOT * i for i in range(days * 48 + 1)]
    expected = expected_slots(35.0, 139.0, default_parameters(10.0), ends, [])
    register, readings = 1000.0, []
    for slot in expected:
        day_index = (slot.slot_end - timeutil.SLOT - start).days
        sky = 1 / 3 if overcast_every and day_index % overcast_every == 0 else 1.0
        register += slot.expected_kwh * share * sky
        readings.append(EnergyReading(slot_end=slot.slot_end, forward_kwh=50.0, reverse_kwh=round(register, 4),
                                      register_wrap_kwh=100_000.0, backfilled=False))
    api.store.write_readings(gateway_id, power=[], energy=readings)


def url(api: Api, query: str, label: str = "a") -> str:
    return f"/api/v1/plants/{api.codes[label]}/{query}"


def test_pv_parameters_default_edit_and_refuse_nonsense(api: Api) -> None:
    pv = api.get(url(api, "pv")).get_json()
    assert (pv["dc_kw"], pv["ac_kw"], pv["tilt_deg"], pv["azimuth_deg"], pv["system_loss_pct"], pv["gamma_pct_per_c"],
            pv["calibration_factor"]) == (10.0, 8.333, 20.0, 180.0, 14.0, -0.4, 1.0)
    assert len(pv["defaulted"]) == 6
    # The owner (customer c1's key) may edit its plant.
    edited = api.send("PUT", url(api, "pv"), {"dc_kw": 59.4, "ac_kw": 49.5, "tilt_deg": 10}, key=api.keys["c1"])
    assert edited.status_code == 200, edited.get_data(as_text=True)
    assert (edited.get_json()["dc_kw"], edited.get_json()["tilt_deg"]) == (59.4, 10.0)
    assert "dc_kw" not in edited.get_json()["defaulted"]
    bad = api.send("PUT", url(api, "pv"), {"dc_kw": 100, "ac_kw": 10})
    assert bad.status_code == 422 and bad.content_type == PROBLEM
    assert "DC/AC ratio must lie between 0.5 and 3" in bad.get_json()["detail"]
    assert api.send("PUT", url(api, "pv"), {"tilt_deg": 95}).status_code == 422
    assert api.send("PUT", url(api, "pv"), {"colour": "red"}).status_code == 422
    # Another customer's plant is not there for c2.
    assert api.send("PUT", url(api, "pv"), {"tilt_deg": 5}, key=api.keys["c2"]).status_code == 404
    assert api.get(url(api, "pv"), key=api.keys["c2"]).status_code == 404


def test_expected_beside_sold_per_slot_hour_day_and_csv(api: Api) -> None:
    sell_share_of_clear_sky(api, YESTERDAY, 1, 0.8)
    day = api.get(url(api, f"expected?interval=day&start={YESTERDAY}&end={YESTERDAY}")).get_json()
    assert "SOLD energy" in day["comparison"] and day["calibration_factor"] == 1.0
    [point] = day["items"]
    assert point["period_start"] == "2026-06-16T00:00:00+09:00" and point["source"] == "clear_sky"
    assert 4.0 < point["expected_kwh"] / 10 < 7.0  # kWh per kW on a clear June day at 35° N
    assert point["sold_ratio"] == pytest.approx(0.8, abs=0.01)
    assert 0.5 < point["pr_sold"] < point["sold_ratio"]  # PR also counts the inverter, clipping, heat
    assert point["pr_sold_temp"] > point["pr_sold"]  # June cells run above 25 °C
    slots = api.get(url(api, f"expected?interval=30min&start={YESTERDAY}&end={YESTERDAY}")).get_json()["items"]
    assert len(slots) == 48 and slots[0]["period_end"] == "2026-06-16T00:30:00+09:00"
    assert sum(s["expected_kwh"] for s in slots) == pytest.approx(point["expected_kwh"], abs=0.01)
    assert slots[0]["sold_ratio"] is None  # night: nothing expected, no ratio
    hours = api.get(url(api, f"expected?interval=hour&start={YESTERDAY}&end={YESTERDAY}")).get_json()["items"]
    assert len(hours) == 24 and max(h["expected_kwh"] for h in hours) > 0.8
    answer = api.get(url(api, f"expected?interval=day&start={YESTERDAY}&end={YESTERDAY}&format=csv"))
    assert answer.headers["Content-Disposition"].endswith(f'-expected-day-{YESTERDAY}_{YESTERDAY}.csv"')
    rows = list(csv.reader(io.StringIO(answer.get_data().decode("utf-8-sig"))))
    assert rows[0] == ["period_start", "period_end", "expected_kwh", "sold_kwh", "sold_ratio", "pr_sold",
                       "pr_sold_temp", "source"]
    assert rows[1][0] == "2026-06-16 00:00:00" and float(rows[1][4]) == pytest.approx(0.8, abs=0.01)


def test_measured_weather_is_used_and_named(api: Api) -> None:
    start = timeutil.day_start(YESTERDAY)
    api.store.write_weather([Weather(service_code=api.codes["a"], observed_at=start + timedelta(hours=h),
                                     ghi_w_m2=150.0 if 6 <= h <= 18 else 0.0, temperature_c=22.0, source="open-meteo")
                             for h in range(1, 25)])
    [cloudy] = api.get(url(api, f"expected?interval=day&start={YESTERDAY}&end={YESTERDAY}")).get_json()["items"]
    [clear] = api.get(url(api, f"expected?interval=day&start={YESTERDAY - timedelta(days=1)}"
                               f"&end={YESTERDAY - timedelta(days=1)}")).get_json()["items"]
    assert cloudy["source"] == "open-meteo" and clear["source"] == "clear_sky"
    assert cloudy["expected_kwh"] < 0.4 * clear["expected_kwh"]


def test_calibration_learns_thirty_percent_shading_and_is_applied(api: Api) -> None:
    first = YESTERDAY - timedelta(days=59)
    sell_share_of_clear_sky(api, first, 60, 0.7, overcast_every=4)
    before = api.get(url(api, f"expected?interval=day&start={YESTERDAY}&end={YESTERDAY}")).get_json()["items"][0]
    answer = api.send("POST", url(api, "pv/calibrate"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    learned = answer.get_json()
    assert learned["learned"] and learned["calibration_factor"] == pytest.approx(0.7, abs=0.02)
    assert learned["clear_days"] >= 3
    assert api.get(url(api, "pv")).get_json()["calibration_days"] == learned["clear_days"]
    after = api.get(url(api, f"expected?interval=day&start={YESTERDAY}&end={YESTERDAY}")).get_json()["items"][0]
    assert after["expected_kwh"] == pytest.approx(before["expected_kwh"] * learned["calibration_factor"], rel=1e-3)
    assert after["sold_ratio"] == pytest.approx(1.0, abs=0.03)  # shading absorbed: no false alarm
    # A plant with nothing sold has nothing to learn from: the factor stays, and the answer says why.
    other = api.send("POST", url(api, "pv/calibrate", "b")).get_json()
    assert (other["learned"], other["calibration_factor"]) == (False, 1.0) and "at least 3" in other["message"]


def test_no_location_and_long_ranges_are_422(api: Api) -> None:
    api.send("PATCH", f"/api/v1/plants/{api.codes['b']}", {"latitude": None, "longitude": None})
    assert api.registry.get_plant(api.codes["b"]).latitude is None  # type: ignore[union-attr]
    answer = api.get(url(api, "expected", "b"))
    assert answer.status_code == 422 and "has no latitude and longitude" in answer.get_json()["detail"]
    answer = api.get(url(api, "expected?interval=30min&start=2026-01-01&end=2026-03-01"))
    assert answer.status_code == 422 and "at most 31 days" in answer.get_json()["detail"]


def test_cross_plant_list_shows_yesterdays_performance_ratio(api: Api) -> None:
    sell_share_of_clear_sky(api, YESTERDAY, 1, 0.8)
    items = {p["service_code"]: p for p in api.get("/api/v1/plants").get_json()["items"]}
    assert 0.5 < items[api.codes["a"]]["pr_sold_yesterday"] < 0.8
    assert items[api.codes["b"]]["pr_sold_yesterday"] is None  # no gateway, nothing sold


def test_the_lists_ratio_is_kept_until_the_parameters_change(api: Api) -> None:
    """The model is too slow to rerun for every plant on every 20-s refresh: the list keeps yesterday's
    ratio; a second gateway's sales of yesterday do not change it at once, new PV parameters do."""
    sell_share_of_clear_sky(api, YESTERDAY, 1, 0.8)
    first = api.get("/api/v1/plants").get_json()["items"][0]["pr_sold_yesterday"]
    sell_share_of_clear_sky(api, YESTERDAY, 1, 0.8, gateway_id="gw-x")
    api.registry.bind_gateway("gw-x", api.codes["a"])  # its earlier readings count for plant a: sold doubles
    assert api.get("/api/v1/plants").get_json()["items"][0]["pr_sold_yesterday"] == first
    api.send("PUT", url(api, "pv"), {"dc_kw": 40.0})  # 4 × the reference, 2 × the sold energy
    assert api.get("/api/v1/plants").get_json()["items"][0]["pr_sold_yesterday"] == pytest.approx(first / 2, rel=0.01)


def test_a_list_answer_spends_a_bounded_time_on_ratios_and_the_next_refresh_fills_them_in(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tens of milliseconds a plant: a thousand plants' first list would wait for tens of seconds."""
    sell_share_of_clear_sky(api, YESTERDAY, 1, 0.8)
    monkeypatch.setattr(plant_figures, "LIST_RATIO_BUDGET_S", 0.0)  # no time left for any ratio
    deferred = RATIOS_DEFERRED._value.get()
    first = {p["service_code"]: p for p in api.get("/api/v1/plants").get_json()["items"]}
    assert first[api.codes["a"]]["pr_sold_yesterday"] is None
    assert RATIOS_DEFERRED._value.get() > deferred
    monkeypatch.setattr(plant_figures, "LIST_RATIO_BUDGET_S", 1.0)
    later = {p["service_code"]: p for p in api.get("/api/v1/plants").get_json()["items"]}
    assert 0.5 < later[api.codes["a"]]["pr_sold_yesterday"] < 0.8


def test_a_running_month_is_compared_over_its_metered_days_across_a_month_end_in_jst(api: Api) -> None:
    """Sales from 20 May to "now" (17 June, 12:00 JST) at 80 % of the clear sky: May's ratio covers its
    last 12 days and June's its first 16½, each against the expectation of the same slots, not of the
    whole month (which read as 0.8 × 12/31 = 0.31 for May and about 0.8 × 16.5/30 = 0.44 for June)."""
    first = date(2026, 5, 20)
    start = timeutil.day_start(first)
    now = timeutil.now_jst()
    ends = [start + timeutil.SLOT * i for i in range(int((now - start) / timeutil.SLOT) + 1)]
    register, readings = 1000.0, []
    for slot in expected_slots(35.0, 139.0, default_parameters(10.0), ends, []):
        register += slot.expected_kwh * 0.8
        readings.append(EnergyReading(slot_end=slot.slot_end, forward_kwh=50.0, reverse_kwh=round(register, 4),
                                      register_wrap_kwh=100_000.0, backfilled=False))
    api.store.write_readings("gw-a", power=[], energy=readings)
    may, june = api.get(url(api, "expected?interval=month&start=2026-05-01&end=2026-06-30")).get_json()["items"]
    assert (may["period_start"], june["period_start"]) == ("2026-05-01T00:00:00+09:00", "2026-06-01T00:00:00+09:00")
    assert may["sold_ratio"] == pytest.approx(0.8, abs=0.01) and june["sold_ratio"] == pytest.approx(0.8, abs=0.01)
    # The expectation shown is still the whole month's; the sold energy is what was metered.
    assert may["sold_kwh"] / may["expected_kwh"] == pytest.approx(0.8 * 12 / 31, abs=0.03)
    assert june["sold_kwh"] / june["expected_kwh"] < 0.5
    assert 0.5 < may["pr_sold"] < 0.8 and 0.5 < june["pr_sold"] < 0.8
    # The same days, day by day: 31 May is May's last metered day, the slot ending 1 June 00:00 JST its last slot.
    days = api.get(url(api, "expected?interval=day&start=2026-05-31&end=2026-06-17")).get_json()["items"]
    assert days[0]["period_start"] == "2026-05-31T00:00:00+09:00"
    assert days[0]["sold_ratio"] == pytest.approx(0.8, abs=0.01)
    # Today (till noon) is compared over its morning.
    assert days[-1]["sold_ratio"] == pytest.approx(0.8, abs=0.01)
    assert days[-1]["sold_kwh"] < 0.7 * 0.8 * days[-1]["expected_kwh"]
