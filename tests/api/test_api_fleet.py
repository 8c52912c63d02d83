"""Gateways, events, notices and the summary through the Flask test client."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from tests.api.conftest import PROBLEM, Api


def test_notices_for_everyone_and_for_one_customer(api: Api) -> None:
    general = api.send("POST", "/api/v1/notices", {"kind": "maintenance", "title": "定期メンテナンス",
                                                   "body": "サーバー停止", "starts_at": "2026-07-01T01:00:00+09:00",
                                                   "ends_at": "2099-07-01T03:00:00+09:00"})
    assert general.status_code == 201, general.get_data(as_text=True)
    assert general.get_json()["starts_at"] == "2026-07-01T01:00:00+09:00"
    own = api.send("POST", "/api/v1/notices", {"kind": "outage", "title": "停電", "body": "c2 only",
                                               "customer_id": "c2"})
    assert own.status_code == 201
    titles = lambda key: [n["title"] for n in api.get("/api/v1/notices", key).get_json()["items"]]  # noqa: E731
    assert titles(api.keys["c1"]) == ["定期メンテナンス"]
    assert titles(api.keys["c2"]) == ["停電", "定期メンテナンス"]
    assert api.get("/api/v1/notices").get_json()["total"] == 2
    assert api.send("DELETE", f"/api/v1/notices/{own.get_json()['notice_id']}").status_code == 204
    assert api.send("DELETE", f"/api/v1/notices/{own.get_json()['notice_id']}").status_code == 404
    assert api.get("/api/v1/notices", api.keys["c2"]).get_json()["total"] == 1


def test_ended_notices_are_left_out_of_current(api: Api) -> None:
    past = (timeutil.now_jst() - timedelta(days=1)).isoformat()
    api.send("POST", "/api/v1/notices", {"kind": "info", "title": "old", "body": "", "ends_at": past})
    api.send("POST", "/api/v1/notices", {"kind": "info", "title": "open-ended", "body": ""})
    assert [n["title"] for n in api.get("/api/v1/notices?current=true").get_json()["items"]] == ["open-ended"]
    assert api.get("/api/v1/notices").get_json()["total"] == 2


@pytest.mark.parametrize("body", [
    {"kind": "party", "title": "x", "body": ""},
    {"kind": "info", "title": "x", "body": "", "starts_at": "2026-07-01T01:00:00"},  # no offset
    {"kind": "info", "title": "x", "body": "", "starts_at": "2026-07-02T00:00:00+09:00",
     "ends_at": "2026-07-01T00:00:00+09:00"},
    {"kind": "info", "title": "x", "body": "", "customer_id": "nobody"},
    {"kind": "info", "title": "x", "body": "", "starts_at": "0001-01-01T00:00:00+09:00"},
])
def test_bad_notices_are_422(api: Api, body: dict[str, object]) -> None:
    response = api.send("POST", "/api/v1/notices", body)
    assert response.status_code == 422
    assert response.content_type == PROBLEM


def test_a_customers_operator_publishes_notices_for_its_customer_only(api: Api) -> None:
    body = {"kind": "info", "title": "x", "body": ""}
    own = api.send("POST", "/api/v1/notices", body, api.keys["c1"])
    assert own.status_code == 201 and own.get_json()["customer_id"] == "c1"
    assert own.get_json()["created_by"] == "key:c1"
    other = api.send("POST", "/api/v1/notices", {**body, "customer_id": "c2"}, api.keys["c1"])
    assert other.status_code == 403 and "customer_id" in other.get_json()["detail"]
    created = api.send("POST", "/api/v1/notices", body).get_json()
    assert api.send("DELETE", f"/api/v1/notices/{created['notice_id']}", None, api.keys["c1"]).status_code == 403


def test_summary(api: Api) -> None:
    now = timeutil.now_jst()
    start, _ = timeutil.today_bounds(now)
    api.registry.record_gateway_status("gw-a", "online", now)
    api.registry.record_gateway_status("gw-c", "offline", now)
    api.registry.open_event(kind="gateway_offline", at=now, message="c down", gateway_id="gw-c",
                            service_code=api.codes["c"])
    api.store.write_readings("gw-a", power=[], energy=[
        EnergyReading(slot_end=start - timedelta(minutes=30), reverse_kwh=10.0, forward_kwh=0.0),
        EnergyReading(slot_end=start, reverse_kwh=11.0, forward_kwh=0.0),  # yesterday's last slot
        EnergyReading(slot_end=start + timedelta(minutes=30), reverse_kwh=13.0, forward_kwh=0.0),
    ])
    api.send("POST", "/api/v1/notices", {"kind": "outage", "title": "停電", "body": ""})
    body = api.get("/api/v1/summary").get_json()
    assert body["gateways"] == {"normal": 1, "abnormal": 1, "total": 2, "online": 1, "offline": 1, "never_seen": 0,
                                "unbound": 0}
    assert (body["plants"], body["total_sold_kwh"], body["today_sold_kwh"], body["open_events"]) == (3, 3.0, 2.0, 1)
    assert [n["title"] for n in body["notices"]] == ["停電"]
    assert [e["message"] for e in body["events"]] == ["c down"]
    mine = api.get("/api/v1/summary", api.keys["c1"]).get_json()
    assert mine["gateways"] == {"normal": 1, "abnormal": 0, "total": 1, "online": 1, "offline": 0, "never_seen": 0,
                                "unbound": 0}
    assert (mine["plants"], mine["open_events"], mine["events"]) == (2, 0, [])
    other = api.get("/api/v1/summary", api.keys["c2"]).get_json()
    assert (other["total_sold_kwh"], other["open_events"]) == (0.0, 1)


def test_gateway_binding(api: Api) -> None:
    response = api.send("PUT", "/api/v1/gateways/gw-b", {"service_code": api.codes["b"]})
    assert response.status_code == 200
    assert response.get_json()["service_code"] == api.codes["b"]
    assert api.get(f"/api/v1/plants/{api.codes['b']}").get_json()["gateway_ids"] == ["gw-b"]
    assert api.send("PUT", "/api/v1/gateways/gw-b", {"service_code": None}).get_json()["service_code"] is None
    assert api.send("PUT", "/api/v1/gateways/gw-b", {"service_code": "pss99999999"}).status_code == 422
    assert api.send("PUT", "/api/v1/gateways/gw-b", {"service_code": api.codes["a"]}, api.keys["c1"]).status_code == 403
    assert api.send("PUT", "/api/v1/gateways/bad%20id", {"service_code": None}).status_code == 422


def test_moving_a_gateway_leaves_its_earlier_readings_with_the_earlier_plant(api: Api) -> None:
    """PUT /gateways/{id} moves the gateway from now on. Before bindings it moved the whole history:
    plant a's yesterday emptied and plant b showed a's energy and peak as its own."""
    start, _ = timeutil.today_bounds(timeutil.now_jst())
    morning = start - timedelta(days=1) + timedelta(hours=10)
    api.store.write_readings("gw-a", power=[PowerReading(measured_at=morning, power_w=-1500)], energy=[
        EnergyReading(slot_end=morning + timedelta(minutes=30 * i), reverse_kwh=20.0 + i, forward_kwh=0.0)
        for i in range(3)])
    assert api.send("PUT", "/api/v1/gateways/gw-a", {"service_code": api.codes["b"]}).status_code == 200
    day = morning.date().isoformat()

    def read(code: str, what: str) -> list[dict[str, object]]:
        response = api.get(f"/api/v1/plants/{code}/{what}{'&' if '?' in what else '?'}start={day}&end={day}")
        assert response.status_code == 200, response.get_data(as_text=True)
        items: list[dict[str, object]] = response.get_json()["items"]
        return items

    assert [(e["sold_kwh"], e["slots"]) for e in read(api.codes["a"], "energy?interval=day")] == [(2.0, 2)]
    assert [p["peak_sold_w"] for p in read(api.codes["a"], "peaks")] == [1500]
    assert read(api.codes["b"], "energy?interval=day") == []
    assert read(api.codes["b"], "peaks") == []
    assert read(api.codes["b"], "power") == []
    assert api.get(f"/api/v1/plants/{api.codes['a']}").get_json()["gateway_ids"] == []
    assert api.get(f"/api/v1/plants/{api.codes['b']}").get_json()["gateway_ids"] == ["gw-a"]


def test_events_total_counts_every_event(tmp_path: Path) -> None:
    """services/api/pms_api/app.py `list_events` (lines 134-137): `total = offset + len(records)`
    with records fetched with `limit + 1`, so total is at most offset + limit + 1, not the number
    of events: 5 events with limit=1 answer total 2. The plants and gateways pages give the true total.
    """
    from pms_api.app import create_app
    from pms_api.settings import ApiSettings
    from pms_common import timeutil
    from pms_registry import Registry

    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key="admin-secret"))
    registry: Registry = app.config["registry"]
    now = timeutil.now_jst()
    for n in range(5):
        registry.open_event(kind="gateway_offline", at=now - timedelta(minutes=n), message=f"e{n}",
                            gateway_id=f"gw-{n}")
    response = app.test_client().get("/api/v1/events?limit=1",
                                     headers={"Authorization": "Bearer admin-secret"})
    body = response.get_json()
    app.config["store"].close()
    registry.close()
    assert [e["message"] for e in body["items"]] == ["e0"]
    assert body["total"] == 5
