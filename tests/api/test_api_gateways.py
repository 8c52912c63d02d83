"""GET /api/v1/gateways[/{id}], binding and decommissioning, and how the home screen counts gateways."""

from __future__ import annotations

from datetime import timedelta

from pms_common import timeutil
from pms_common.messages import EnergyReading
from tests.api.conftest import PROBLEM, Api

HEARTBEAT = {
    "gateway_id": "gw-a", "at": "2026-06-17T11:59:00+09:00", "uptime_s": 3600.0, "firmware": "1.4.2",
    "module_family": "dual-stack", "rssi_dbm": -61, "lqi": 180, "read_errors_total": 3, "outbox_depth": 12,
    "power_interval_s": 60.0, "heartbeat_interval_s": 30.0, "meter_clock_skew_s": 42.0,
    "meter_scale_problem": None, "backfill": {"pending_days": 2, "last_failure": "the meter did not answer E2"},
}


def test_a_gateway_shows_binding_health_and_presence_history(api: Api) -> None:
    now = timeutil.now_jst()
    api.registry.record_heartbeat("gw-a", HEARTBEAT, now, 60.0)
    api.registry.record_presence("gw-a", "online", now - timedelta(minutes=10), "connected")
    api.registry.record_presence("gw-a", "offline", now - timedelta(minutes=5), "no heartbeat for 90 s")
    api.registry.record_presence("gw-a", "online", now - timedelta(minutes=1), "heartbeat resumed")
    body = api.get("/api/v1/gateways/gw-a").get_json()
    assert (body["service_code"], body["plant_name"], body["condition"], body["status"]) == (
        api.codes["a"], "Plant a", "online", "online")
    assert body["bound_since"] is not None
    assert {k: body[k] for k in ("uptime_s", "firmware", "module_family", "rssi_dbm", "lqi", "read_errors_total",
                                 "outbox_depth", "backfill_pending_days", "backfill_last_failure",
                                 "meter_clock_skew_s", "meter_scale_problem")} == {
        "uptime_s": 3600.0, "firmware": "1.4.2", "module_family": "dual-stack", "rssi_dbm": -61, "lqi": 180,
        "read_errors_total": 3, "outbox_depth": 12, "backfill_pending_days": 2,
        "backfill_last_failure": "the meter did not answer E2", "meter_clock_skew_s": 42.0,
        "meter_scale_problem": None}
    assert [(p["state"], p["reason"]) for p in body["presence"]] == [
        ("online", "heartbeat resumed"), ("offline", "no heartbeat for 90 s"), ("online", "connected")]
    assert [(b["service_code"], b["bound_until"]) for b in body["bindings"]] == [(api.codes["a"], None)]


def test_a_customer_sees_only_its_gateways(api: Api) -> None:
    ids = lambda key, query="": [g["gateway_id"] for g in api.get(f"/api/v1/gateways{query}", key)  # noqa: E731
                                 .get_json()["items"]]
    api.registry.record_gateway_status("gw-free", "online", timeutil.now_jst())
    assert ids(api.keys["c1"]) == ["gw-a"]
    assert ids(api.keys["c2"]) == ["gw-c"]
    assert ids(api.keys["c1"], "?customer_id=c2") == []
    assert ids("admin-secret", "?customer_id=c2") == ["gw-c"]
    assert ids("admin-secret") == ["gw-a", "gw-c", "gw-free"]
    assert api.get("/api/v1/gateways/gw-c", api.keys["c1"]).status_code == 404  # as for no gateway at all
    assert api.get("/api/v1/gateways/gw-none").status_code == 404
    assert api.get("/api/v1/gateways/gw-c", api.keys["c2"]).status_code == 200


def test_a_customer_sees_only_the_bindings_to_its_own_plants(api: Api) -> None:
    api.registry.bind_gateway("gw-c", api.codes["a"], at=timeutil.now_jst() + timedelta(minutes=1))  # c2 → c1
    mine = api.get("/api/v1/gateways/gw-c", api.keys["c1"]).get_json()
    assert [b["service_code"] for b in mine["bindings"]] == [api.codes["a"]]
    assert len(api.get("/api/v1/gateways/gw-c").get_json()["bindings"]) == 2
    assert api.get("/api/v1/gateways/gw-c", api.keys["c2"]).status_code == 404  # no longer theirs


def test_filter_by_status(api: Api) -> None:
    now = timeutil.now_jst()
    api.registry.record_gateway_status("gw-a", "offline", now)
    api.registry.record_gateway_status("gw-free", "offline", now)
    api.registry.bind_gateway("gw-new", api.codes["b"])
    by = lambda status: [g["gateway_id"] for g in api.get(f"/api/v1/gateways?status={status}")  # noqa: E731
                         .get_json()["items"]]
    assert (by("offline"), by("unbound"), by("never_seen"), by("online")) == (
        ["gw-a"], ["gw-free"], ["gw-c", "gw-new"], [])
    assert api.get("/api/v1/gateways?status=lost").status_code == 422


def test_decommissioning_keeps_history_and_removes_the_gateway_from_the_counts(api: Api) -> None:
    now = timeutil.now_jst()
    start, _ = timeutil.today_bounds(now)
    api.store.write_readings("gw-a", power=[], energy=[
        EnergyReading(slot_end=start + timedelta(minutes=30 * i), reverse_kwh=10.0 + i, forward_kwh=0.0)
        for i in range(3)])
    api.registry.record_gateway_status("gw-a", "offline", now)
    assert api.get("/api/v1/summary").get_json()["gateways"]["abnormal"] == 1
    assert api.send("POST", "/api/v1/gateways/gw-a/decommission", None, api.keys["c1"]).status_code == 403
    gone = api.send("POST", "/api/v1/gateways/gw-a/decommission")
    assert gone.status_code == 200, gone.get_data(as_text=True)
    assert (gone.get_json()["condition"], gone.get_json()["service_code"]) == ("decommissioned", None)
    assert api.send("POST", "/api/v1/gateways/gw-a/decommission").status_code == 200  # again: no change
    counts = api.get("/api/v1/summary").get_json()["gateways"]
    assert (counts["abnormal"], counts["total"], counts["never_seen"]) == (0, 1, 1)  # gw-c, never heard from
    plant = api.get(f"/api/v1/plants/{api.codes['a']}").get_json()
    assert (plant["gateway_ids"], plant["today_sold_kwh"], plant["status"]) == ([], 2.0, "no_gateway")
    refused = api.send("PUT", "/api/v1/gateways/gw-a", {"service_code": api.codes["b"]})
    assert refused.status_code == 422 and "decommissioned" in refused.get_json()["detail"]
    missing = api.send("POST", "/api/v1/gateways/gw-none/decommission")
    assert (missing.status_code, missing.content_type) == (404, PROBLEM)


def test_never_seen_and_unbound_gateways_are_not_abnormal(api: Api) -> None:
    """Before bindings, gw-a and gw-c (bound, never heard from) counted as abnormal forever."""
    api.registry.record_gateway_status("gw-free", "offline", timeutil.now_jst())  # discovered, never bound
    counts = api.get("/api/v1/summary").get_json()["gateways"]
    assert counts == {"normal": 0, "abnormal": 0, "total": 3, "online": 0, "offline": 0, "never_seen": 2,
                      "unbound": 1}
