from __future__ import annotations

from datetime import timedelta

import pytest

from pms_common import timeutil
from pms_common.messages import EnergyReading
from tests.api.conftest import ADMIN, PROBLEM, Api, plant_json, write_power

ENDPOINTS = ["/api/v1/plants", "/api/v1/plants/pss00000001", "/api/v1/gateways", "/api/v1/events"]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic YTpi"},
                                     {"Authorization": "Bearer "}, {"Authorization": ADMIN}])
def test_401_without_a_valid_key(api: Api, path: str, headers: dict[str, str]) -> None:
    response = api.client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.content_type == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == 401
    assert body["title"] == "Unauthorized"
    assert body["type"] == "about:blank"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_scheme_is_case_insensitive(api: Api) -> None:
    response = api.client.get("/api/v1/plants", headers={"Authorization": f"bearer {ADMIN}"})
    assert response.status_code == 200


def test_admin_sees_all_plants(api: Api) -> None:
    response = api.get("/api/v1/plants")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    body = response.get_json()
    assert [p["service_code"] for p in body["items"]] == [api.codes["a"], api.codes["b"], api.codes["c"]]
    assert (body["total"], body["limit"], body["offset"]) == (3, 100, 0)
    first = body["items"][0]
    assert (first["customer_id"], first["name"], first["address"], first["phone"]) == (
        "c1", "Plant a", "Addr a", "03-1234-5678")


def test_customer_sees_only_its_plants(api: Api) -> None:
    body = api.get("/api/v1/plants", api.keys["c1"]).get_json()
    assert [p["service_code"] for p in body["items"]] == [api.codes["a"], api.codes["b"]]
    assert body["total"] == 2
    body = api.get("/api/v1/plants", api.keys["c2"]).get_json()
    assert [p["service_code"] for p in body["items"]] == [api.codes["c"]]


def test_another_customers_plant_is_404(api: Api) -> None:
    response = api.get(f"/api/v1/plants/{api.codes['c']}", api.keys["c1"])
    assert response.status_code == 404
    assert response.content_type == PROBLEM
    assert response.get_json(force=True)["status"] == 404
    assert plant_json(api, api.codes["c"], api.keys["c2"])["service_code"] == api.codes["c"]


def test_unknown_plant_is_404(api: Api) -> None:
    response = api.get("/api/v1/plants/pss99999999")
    assert response.status_code == 404
    assert response.content_type == PROBLEM


@pytest.mark.parametrize("code", ["pss123", "abc00000001", "pss000000001", "PSS00000001"])
def test_malformed_service_code_is_422(api: Api, code: str) -> None:
    response = api.get(f"/api/v1/plants/{code}")
    assert response.status_code == 422
    assert response.content_type == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == 422
    assert "service_code" in body["detail"]


def test_plant_detail(api: Api) -> None:
    body = plant_json(api, api.codes["a"])
    assert body["service_code"] == api.codes["a"]
    assert body["gateway_ids"] == ["gw-a"]
    assert (body["capacity_kw"], body["tariff_yen_per_kwh"], body["latitude"], body["longitude"]) == (
        10.0, 16.0, 35.0, 139.0)
    assert body["billing_start_date"] is None
    assert body["today_sold_kwh"] == 0.0
    assert body["current_sold_w"] is None
    assert body["status"] == "not_measured"


def test_plant_without_gateway(api: Api) -> None:
    body = plant_json(api, api.codes["b"])
    assert (body["status"], body["current_sold_w"], body["gateway_ids"]) == ("no_gateway", None, [])


def test_current_sold_w_of_a_fresh_reading(api: Api) -> None:
    write_power(api, "gw-a", -1234, timedelta(seconds=10))
    body = plant_json(api, api.codes["a"])
    assert body["current_sold_w"] == 1234
    assert body["status"] == "normal"
    assert body["measured_at"] is not None
    listed = {p["service_code"]: p for p in api.get("/api/v1/plants").get_json()["items"]}
    assert listed[api.codes["a"]]["current_sold_w"] == 1234


def test_buying_is_zero_sold_not_negative(api: Api) -> None:
    write_power(api, "gw-a", 800, timedelta(seconds=5))
    body = plant_json(api, api.codes["a"])
    assert body["current_sold_w"] == 0
    assert body["status"] == "normal"


def test_stale_reading_is_not_measured(api: Api) -> None:
    # Default power interval 60 s: older than 3 × 60 s is no current reading.
    write_power(api, "gw-a", -1234, timedelta(seconds=200))
    body = plant_json(api, api.codes["a"])
    assert body["current_sold_w"] is None
    assert body["measured_at"] is None
    assert body["status"] == "not_measured"


def test_reading_within_three_default_intervals_is_fresh(api: Api) -> None:
    write_power(api, "gw-a", -50, timedelta(seconds=150))
    assert plant_json(api, api.codes["a"])["current_sold_w"] == 50


def test_freshness_follows_the_gateways_power_interval(api: Api) -> None:
    api.registry.record_heartbeat("gw-a", {"firmware": "1"}, timeutil.now_jst(), 10.0)
    write_power(api, "gw-a", -1234, timedelta(seconds=60))  # fresh for 60 s intervals, stale for 10 s ones
    body = plant_json(api, api.codes["a"])
    assert body["current_sold_w"] is None
    assert body["status"] == "not_measured"
    write_power(api, "gw-a", -777, timedelta(seconds=20))
    assert plant_json(api, api.codes["a"])["current_sold_w"] == 777


def test_offline_gateway_makes_the_plant_offline(api: Api) -> None:
    api.registry.record_gateway_status("gw-a", "offline", timeutil.now_jst())
    assert plant_json(api, api.codes["a"])["status"] == "offline"


def test_today_sold_kwh_sums_todays_slots_only(api: Api) -> None:
    start, end = timeutil.today_bounds(timeutil.now_jst())
    registers = [  # (slot end, reverse register kWh): a slot's energy is its register minus the one before
        (start - timedelta(minutes=30), 100.0),
        (start, 101.0),  # the 00:00 slot: 1 kWh of yesterday
        (start + timedelta(minutes=30), 103.0),  # 2 kWh today
        (start + timedelta(minutes=60), 106.5),  # 3.5 kWh today
        (end - timedelta(minutes=30), 109.0),  # no register 30 min before: no slot energy
        (end, 110.0),  # the slot ending 24:00 is today's last: 1 kWh
        (end + timedelta(minutes=30), 111.0),  # 1 kWh of tomorrow
    ]
    energy = [EnergyReading(slot_end=slot_end, forward_kwh=500.0, reverse_kwh=kwh, register_wrap_kwh=100_000.0)
              for slot_end, kwh in registers]
    api.store.write_readings("gw-a", power=[], energy=energy)
    assert plant_json(api, api.codes["a"])["today_sold_kwh"] == 6.5
    listed = {p["service_code"]: p for p in api.get("/api/v1/plants").get_json()["items"]}
    assert listed[api.codes["a"]]["today_sold_kwh"] == 6.5
    assert listed[api.codes["c"]]["today_sold_kwh"] == 0.0


def test_pagination(api: Api) -> None:
    body = api.get("/api/v1/plants?limit=2").get_json()
    assert [p["service_code"] for p in body["items"]] == [api.codes["a"], api.codes["b"]]
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 0)
    body = api.get("/api/v1/plants?limit=2&offset=2").get_json()
    assert [p["service_code"] for p in body["items"]] == [api.codes["c"]]
    assert (body["total"], body["limit"], body["offset"]) == (3, 2, 2)
    body = api.get("/api/v1/plants?offset=10").get_json()
    assert (body["items"], body["total"]) == ([], 3)


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "offset=-1", "limit=abc"])
def test_bad_pagination_is_422(api: Api, query: str) -> None:
    response = api.get(f"/api/v1/plants?{query}")
    assert response.status_code == 422
    assert response.content_type == PROBLEM


def test_gateways(api: Api) -> None:
    api.registry.record_heartbeat("gw-a", {"firmware": "1.2"}, timeutil.now_jst(), 30.0)
    api.registry.record_gateway_status("gw-free", "online", timeutil.now_jst())
    body = api.get("/api/v1/gateways").get_json()
    assert [g["gateway_id"] for g in body["items"]] == ["gw-a", "gw-c", "gw-free"]
    assert body["total"] == 3
    gw_a = body["items"][0]
    assert (gw_a["service_code"], gw_a["power_interval_s"], gw_a["heartbeat"]) == (
        api.codes["a"], 30.0, {"firmware": "1.2"})
    assert gw_a["last_seen_at"].endswith("+09:00")
    body = api.get("/api/v1/gateways", api.keys["c1"]).get_json()
    assert [g["gateway_id"] for g in body["items"]] == ["gw-a"]
    body = api.get("/api/v1/gateways?limit=1&offset=1").get_json()
    assert ([g["gateway_id"] for g in body["items"]], body["total"]) == (["gw-c"], 3)


def test_events(api: Api) -> None:
    now = timeutil.now_jst()
    api.registry.open_event(kind="gateway_offline", at=now - timedelta(hours=2), message="a down",
                            gateway_id="gw-a", service_code=api.codes["a"])
    api.registry.open_event(kind="gateway_offline", at=now - timedelta(hours=1), message="c down",
                            gateway_id="gw-c", service_code=api.codes["c"])
    api.registry.recover_event(kind="gateway_offline", gateway_id="gw-a", at=now)
    body = api.get("/api/v1/events").get_json()
    assert [e["message"] for e in body["items"]] == ["c down", "a down"]
    assert body["items"][1]["state"] == "recovered"
    assert body["items"][1]["recovered_at"] is not None
    assert [e["message"] for e in api.get("/api/v1/events", api.keys["c1"]).get_json()["items"]] == ["a down"]
    assert [e["message"] for e in api.get("/api/v1/events", api.keys["c2"]).get_json()["items"]] == ["c down"]
    assert [e["message"] for e in api.get("/api/v1/events?state=open").get_json()["items"]] == ["c down"]
    page = api.get("/api/v1/events?limit=1&offset=1").get_json()
    assert [e["message"] for e in page["items"]] == ["a down"]
    assert (page["limit"], page["offset"]) == (1, 1)
    assert api.get("/api/v1/events?state=bogus").status_code == 422


def test_events_are_written_in_the_language_asked(api: Api) -> None:
    now = timeutil.now_jst()
    code = api.codes["a"]
    api.registry.open_event(kind="gateway_offline", at=now - timedelta(hours=3), gateway_id="gw-a", service_code=code,
                            message="gateway gw-a is offline (shutdown)", params={"gateway_id": "gw-a", "reason": "shutdown"},
                            severity="critical")
    api.registry.recover_event(kind="gateway_offline", gateway_id="gw-a", at=now - timedelta(minutes=50),
                               params={"duration_s": 7800})
    english = api.get("/api/v1/events").get_json()["items"][0]
    assert english["message"] == "gateway gw-a is offline (shutdown)"  # as logged
    assert (english["phase"], english["kind_label"], english["severity"], english["params"]) == (
        "cleared", "Gateway offline", "critical", {"gateway_id": "gw-a", "reason": "shutdown", "duration_s": 7800})
    assert english["text"] == f"Gateway gw-a at Plant a ({code}) is back online after 2 h 10 min"
    assert (english["alert_id"], english["acknowledged_at"], english["acknowledged_by"], english["ack_comment"]) == (
        None, None, None, None)
    japanese = api.get("/api/v1/events?lang=ja").get_json()["items"][0]
    assert (japanese["kind_label"], japanese["text"]) == (
        "通信断", f"Plant a（{code}） のゲートウェイ gw-a との通信が復旧しました（通信断 2時間10分）")
    assert api.get("/api/v1/events?lang=fr").status_code == 422
    assert api.get("/api/v1/summary").get_json()["events"][0]["text"] == english["text"]


def test_healthz(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_metrics_count_requests(api: Api) -> None:
    api.get("/api/v1/plants")
    response = api.client.get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'pms_api_requests_total{endpoint="/api/v1/plants",status="200"}' in text
    assert "pms_api_auth_failures_total" in text


def test_openapi_document(api: Api) -> None:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert "/api/v1/plants" in document["paths"]
    assert "/api/v1/plants/{service_code}" in document["paths"]
    assert document["paths"]["/api/v1/plants"]["get"]["security"] == [{"bearer": []}]
    assert "/healthz" not in document["paths"]


def test_unknown_route_is_a_404_problem(api: Api) -> None:
    response = api.client.get("/nope")
    assert response.status_code == 404
    assert response.content_type == PROBLEM


def test_an_invalid_key_is_refused_on_every_api_route(api: Api) -> None:
    samples = {"service_code": api.codes["a"], "gateway_id": "gw-a", "notice_id": "1", "username": "admin",
               "key_id": "0123456789abcdef", "group": "north",
               "command_id": "00000000-0000-4000-8000-000000000000", "sha256": "0" * 64,
               "rollout_id": "ro-00000000", "rule_id": "1", "alert_id": "1", "channel_id": "1", "delivery_id": "1",
               "customer_id": "c1"}
    checked = 0
    for rule in api.client.application.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", samples[name]).replace(f"<int:{name}>", samples[name])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for key in ("wrong-key", None):
                response = api.send(method, path, {}, key)
                assert response.status_code == 401, (method, path, key)
                assert response.content_type == PROBLEM
            checked += 1
    assert checked >= 20
