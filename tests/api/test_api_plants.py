"""Plants CRUD and the series endpoints (JSON and CSV) through the Flask test client."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading, Weather
from tests.api.conftest import ADMIN, PROBLEM, Api

SERIES = ["power", "energy", "energy?interval=30min", "energy?interval=day", "energy?interval=month", "peaks",
          "price", "price?interval=month", "weather"]


def _fill(api: Api) -> None:
    """Gateway gw-a of plant a: five power samples a minute apart and registers for today's first 3 hours."""
    now = timeutil.now_jst()
    start, _ = timeutil.today_bounds(now)
    power = [PowerReading(measured_at=now - timedelta(minutes=i), power_w=-1000 - i) for i in range(5)]
    power.append(PowerReading(measured_at=now - timedelta(minutes=6), power_w=300))  # buying: 0 sold
    energy = [EnergyReading(slot_end=start + timedelta(minutes=30 * i), forward_kwh=10.0 + i * 0.1,
                            reverse_kwh=100.0 + i * 0.5, register_wrap_kwh=100_000.0, backfilled=i == 2)
              for i in range(7)]
    api.store.write_readings("gw-a", power=power, energy=energy)
    api.store.write_weather([Weather(service_code=api.codes["a"], observed_at=now - timedelta(minutes=5),
                                     ghi_w_m2=512.5, temperature_c=21.0, source="open-meteo-jma",
                                     dni_w_m2=640.0, dhi_w_m2=110.5, gti_w_m2=580.0, cloud_cover_pct=25.0,
                                     weather_code=2, model="jma_seamless", stale=False)])


def _url(api: Api, label: str, series: str) -> str:
    return f"/api/v1/plants/{api.codes[label]}/{series}"


def test_power_series_is_sold_positive_and_ordered(api: Api) -> None:
    _fill(api)
    body = api.get(_url(api, "a", "power")).get_json()
    today = timeutil.now_jst().date().isoformat()
    assert (body["start"], body["end"]) == (today, today)
    sold = [p["sold_power_w"] for p in body["items"]]
    assert sold == [0, 1004, 1003, 1002, 1001, 1000]
    assert body["items"][0]["power_w"] == 300
    assert all(p["measured_at"].endswith("+09:00") for p in body["items"])


def test_energy_by_slot_hour_day_month(api: Api) -> None:
    _fill(api)
    slots = api.get(_url(api, "a", "energy?interval=30min")).get_json()["items"]
    assert [s["sold_kwh"] for s in slots] == [0.5] * 6
    assert [s["backfilled"] for s in slots] == [False, True, False, False, False, False]
    assert slots[0]["period_end"].endswith("T00:30:00+09:00")  # slots are named by their end
    hours = api.get(_url(api, "a", "energy?interval=hour")).get_json()["items"]
    assert [(h["sold_kwh"], h["slots"], h["backfilled"]) for h in hours] == [(1.0, 2, True), (1.0, 2, False),
                                                                              (1.0, 2, False)]
    assert hours[0]["bought_kwh"] == pytest.approx(0.2)
    day = api.get(_url(api, "a", "energy?interval=day")).get_json()
    assert [d["sold_kwh"] for d in day["items"]] == [3.0]
    assert day["start"].endswith("-01")
    month = api.get(_url(api, "a", "energy?interval=month")).get_json()
    assert [m["sold_kwh"] for m in month["items"]] == [3.0]
    assert (month["start"][5:], month["end"][5:]) == ("01-01", "12-31")


def test_energy_of_a_past_range_is_empty(api: Api) -> None:
    _fill(api)
    body = api.get(_url(api, "a", "energy?interval=day&start=2025-01-01&end=2025-01-31")).get_json()
    assert (body["items"], body["start"], body["end"]) == ([], "2025-01-01", "2025-01-31")


def test_peaks_price_weather(api: Api) -> None:
    _fill(api)
    peaks = api.get(_url(api, "a", "peaks")).get_json()["items"]
    assert [(p["day"], p["peak_sold_w"]) for p in peaks] == [(timeutil.now_jst().date().isoformat(), 1004)]
    price = api.get(_url(api, "a", "price")).get_json()
    assert price["items"][0]["amount_yen"] == 48.0  # 3 kWh × 16 yen
    assert price["total_yen"] == 48.0
    weather = api.get(_url(api, "a", "weather")).get_json()["items"]
    assert [(w["ghi_w_m2"], w["temperature_c"]) for w in weather] == [(512.5, 21.0)]
    assert {k: weather[0][k] for k in ("dni_w_m2", "dhi_w_m2", "gti_w_m2", "cloud_cover_pct", "weather_code",
                                       "model", "stale", "source")} == {
        "dni_w_m2": 640.0, "dhi_w_m2": 110.5, "gti_w_m2": 580.0, "cloud_cover_pct": 25.0, "weather_code": 2,
        "model": "jma_seamless", "stale": False, "source": "open-meteo-jma"}


def test_price_without_tariff_is_null(api: Api) -> None:
    _fill(api)
    api.send("PATCH", f"/api/v1/plants/{api.codes['a']}", {"tariff_yen_per_kwh": None})
    price = api.get(_url(api, "a", "price")).get_json()
    assert (price["items"][0]["amount_yen"], price["total_yen"]) == (None, None)


def test_series_of_a_plant_without_data_are_empty(api: Api) -> None:
    for series in SERIES:
        response = api.get(_url(api, "b", series))
        assert response.status_code == 200, series
        assert response.get_json()["items"] == []


@pytest.mark.parametrize("series", SERIES)
def test_another_customers_series_is_404(api: Api, series: str) -> None:
    assert api.get(_url(api, "c", series), api.keys["c1"]).status_code == 404
    assert api.get(_url(api, "c", series), api.keys["c2"]).status_code == 200
    assert api.get(_url(api, "c", series), "bogus").status_code == 401


@pytest.mark.parametrize("series", SERIES)
def test_every_series_as_csv_with_bom(api: Api, series: str) -> None:
    _fill(api)
    joiner = "&" if "?" in series else "?"
    response = api.get(_url(api, "a", series) + joiner + "format=csv")
    assert response.status_code == 200
    assert response.content_type == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith(f'attachment; filename="{api.codes["a"]}-')
    assert response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert len(rows) >= 2 and all(len(row) == len(rows[0]) for row in rows)


def test_csv_times_are_japan_time(api: Api) -> None:
    _fill(api)
    text = api.get(_url(api, "a", "energy?interval=30min&format=csv")).data.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    today = timeutil.now_jst().date().isoformat()
    assert rows[0] == {"service_code": api.codes["a"], "plant_name": "Plant a", "period_start": f"{today} 00:00:00", "period_end": f"{today} 00:30:00", "sold_kwh": "0.5",
                       "bought_kwh": "0.1", "slots": "1", "backfilled": "0"}
    assert rows[1]["backfilled"] == "1"


def test_csv_in_shift_jis(api: Api) -> None:
    _fill(api)
    response = api.get(_url(api, "a", "weather?format=csv&encoding=shift_jis"))
    assert response.content_type == "text/csv; charset=shift_jis"
    assert not response.data.startswith(b"\xef\xbb\xbf")
    assert response.data.decode("cp932").splitlines()[0] == (
        "service_code,plant_name,observed_at,ghi_w_m2,temperature_c,source,dni_w_m2,dhi_w_m2,gti_w_m2,cloud_cover_pct,weather_code,model,stale"
    )


@pytest.mark.parametrize("query", ["start=2026-06-02&end=2026-06-01", "start=1999-12-31", "end=2100-01-01",
                                   "start=2026-01-01&end=2026-06-01", "interval=week", "format=xml",
                                   "encoding=latin-1", "start=yesterday"])
def test_bad_series_queries_are_422(api: Api, query: str) -> None:
    response = api.get(_url(api, "a", "energy") + "?" + query)
    assert response.status_code == 422, query
    assert response.content_type == PROBLEM


def test_a_missing_end_follows_the_start(api: Api) -> None:
    body = api.get(_url(api, "a", "energy?interval=day&start=2026-02-10")).get_json()
    assert (body["start"], body["end"]) == ("2026-02-10", "2026-02-28")
    body = api.get(_url(api, "a", "power?end=2026-02-10")).get_json()
    assert (body["start"], body["end"]) == ("2026-02-10", "2026-02-10")


def test_admin_creates_updates_and_retires_a_plant(api: Api) -> None:
    created = api.send("POST", "/api/v1/plants", {"customer_id": "c2", "name": "新発電所", "address": "大阪府",
                                                  "phone": "06-1234-5678", "capacity_kw": 49.5,
                                                  "tariff_yen_per_kwh": 12.0, "latitude": 34.6, "longitude": 135.4})
    assert created.status_code == 201, created.get_data(as_text=True)
    code = created.get_json()["service_code"]
    assert code == "pss00000004"
    assert api.get(f"/api/v1/plants/{code}", api.keys["c2"]).status_code == 200
    changed = api.send("PATCH", f"/api/v1/plants/{code}", {"name": "改名", "billing_start_date": "2026-06-01"})
    assert changed.status_code == 200
    assert (changed.get_json()["name"], changed.get_json()["billing_start_date"]) == ("改名", "2026-06-01")
    api.send("PUT", "/api/v1/gateways/gw-new", {"service_code": code})
    # A gateway served it: the plant is kept, and the refusal says what to do instead.
    refused = api.send("DELETE", f"/api/v1/plants/{code}")
    assert refused.status_code == 409 and "retire" in refused.get_json()["detail"]
    retired = api.send("POST", f"/api/v1/plants/{code}/retire")
    assert retired.status_code == 200 and retired.get_json()["retired_at"] is not None
    assert api.get(f"/api/v1/plants/{code}").status_code == 200  # its page and data stay
    assert code not in [p["service_code"] for p in api.get("/api/v1/plants?limit=500").get_json()["items"]]
    gateways = {g["gateway_id"]: g for g in api.get("/api/v1/gateways").get_json()["items"]}
    assert gateways["gw-new"]["service_code"] is None
    rebound = api.send("PUT", "/api/v1/gateways/gw-new", {"service_code": code})
    assert rebound.status_code == 422 and "is retired" in rebound.get_json()["detail"]
    # A plant entered by mistake (no gateway, no event) may be deleted.
    mistake = api.send("POST", "/api/v1/plants", {"customer_id": "c2", "name": "誤登録", "address": "大阪府",
                                                  "phone": "06-1234-5678"}).get_json()["service_code"]
    assert api.send("DELETE", f"/api/v1/plants/{mistake}").status_code == 204
    assert api.get(f"/api/v1/plants/{mistake}").status_code == 404


def test_operators_change_only_their_customers_plants(api: Api) -> None:
    own, other = api.codes["a"], api.codes["c"]
    body = {"customer_id": "c1", "name": "x", "address": "y", "phone": "0"}
    assert api.send("POST", "/api/v1/plants", body, api.keys["c1"]).status_code == 201
    assert api.send("POST", "/api/v1/plants", {**body, "customer_id": "c2"}, api.keys["c1"]).status_code == 403
    assert api.send("PATCH", f"/api/v1/plants/{own}", {"name": "z"}, api.keys["c1"]).status_code == 200
    assert api.send("PATCH", f"/api/v1/plants/{own}", {"customer_id": "c2"}, api.keys["c1"]).status_code == 403
    assert api.send("DELETE", f"/api/v1/plants/{own}", None, api.keys["c1"]).status_code == 409
    now = timeutil.now_jst()
    read_only = api.registry.create_api_key(label="c1-read", created_at=now, customer_id="c1", scope="read")
    assert api.send("PATCH", f"/api/v1/plants/{own}", {"name": "z"}, read_only).status_code == 403
    assert api.send("PATCH", f"/api/v1/plants/{other}", {"name": "z"}, api.keys["c1"]).status_code == 404
    assert api.send("DELETE", f"/api/v1/plants/{other}", None, api.keys["c1"]).status_code == 404
    assert api.send("DELETE", f"/api/v1/plants/{other}", None, "bogus").status_code == 401


@pytest.mark.parametrize("body", [
    {"customer_id": "nobody", "name": "x", "address": "y", "phone": "0"},
    {"customer_id": "c1", "name": "", "address": "y", "phone": "0"},
    {"customer_id": "c1", "name": "a\x00b", "address": "y", "phone": "0"},
    {"customer_id": "c1", "name": "x", "address": "y", "phone": "call me"},
    {"customer_id": "c1", "name": "x", "address": "y", "phone": "0", "latitude": 91},
    {"customer_id": "c1", "name": "x", "address": "y", "phone": "0", "color": "red"},
])
def test_bad_plants_are_422(api: Api, body: dict[str, object]) -> None:
    response = api.send("POST", "/api/v1/plants", body)
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    assert api.registry.count_plants() == 3


def test_patch_refuses_nulls_for_required_fields_and_unknown_customers(api: Api) -> None:
    url = f"/api/v1/plants/{api.codes['a']}"
    assert api.send("PATCH", url, {"name": None}).status_code == 422
    assert api.send("PATCH", url, {"customer_id": "nobody"}).status_code == 422
    assert api.get(url, ADMIN).get_json()["customer_id"] == "c1"
