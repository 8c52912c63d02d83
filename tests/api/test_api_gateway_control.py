"""Gateway control over the API: config push (one gateway, a group), tags, commands and the audit log.

These stop at the registry (what device-manager then publishes is tested in tests/device_manager)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from pms_common import timeutil
from tests.api.conftest import ADMIN, PROBLEM, Api


def refused(endpoint: str) -> float:
    return REGISTRY.get_sample_value("pms_api_gateway_control_refused_total", {"endpoint": endpoint}) or 0.0


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def test_a_config_push_bumps_the_version_and_shows_drift_until_reported(api: Api) -> None:
    before = ok(api.get("/api/v1/gateways/gw-a/config"))
    assert before == {"gateway_id": "gw-a", "desired": None, "reported": None, "drift": False}
    pushed = ok(api.send("PUT", "/api/v1/gateways/gw-a/config", {"power_interval_s": 10, "log_level": "DEBUG"}))
    assert pushed["desired"]["version"] == 1 and pushed["drift"] is True
    assert pushed["desired"]["document"] == {"power_interval_s": 10, "heartbeat_interval_s": 30,
                                             "energy_interval_s": 600, "log_level": "DEBUG"}
    assert pushed["desired"]["updated_by"] == "key:admin (PMS_ADMIN_API_KEY)"
    assert pushed["desired"]["published"] is False
    again = ok(api.send("PUT", "/api/v1/gateways/gw-a/config", {"energy_interval_s": 120}))
    assert again["desired"]["version"] == 2
    assert again["desired"]["document"]["power_interval_s"] == 10  # the rest kept
    # What device-manager does when the gateway reports the version:
    api.registry.record_reported_config("gw-a", 2, {**again["desired"]["document"], "version": 2},
                                        timeutil.now_jst())
    synced = ok(api.get("/api/v1/gateways/gw-a/config"))
    assert synced["drift"] is False and synced["reported"]["document"]["energy_interval_s"] == 120
    entries = ok(api.get("/api/v1/audit?target=gw-a"))["items"]
    assert [(e["action"], e["outcome"][:7]) for e in entries] == [("config", "applied"), ("config", "pending")]
    assert entries[0]["detail"] == {"energy_interval_s": 120}


@pytest.mark.parametrize(("body", "says"), [
    ({"power_interval_s": 0.5}, "power_interval_s: Input should be greater than or equal to 1"),
    ({"heartbeat_interval_s": 7200}, "heartbeat_interval_s: Input should be less than or equal to 3600"),
    ({"energy_interval_s": 100000}, "energy_interval_s: Input should be less than or equal to 86400"),
    ({"log_level": "LOUD"}, "log_level: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
    ({}, "name at least one of power_interval_s"),
    ({"power_interval_s": 10, "colour": "red"}, "colour: Extra inputs are not permitted"),
])
def test_a_bad_config_is_refused_with_a_sentence_and_counted(api: Api, body: dict[str, Any], says: str) -> None:
    counted = refused("put_gateway_config")
    response = api.send("PUT", "/api/v1/gateways/gw-a/config", body)
    assert response.status_code == 422 and response.content_type == PROBLEM
    assert says in response.get_json()["detail"]
    assert refused("put_gateway_config") == counted + 1
    assert ok(api.get("/api/v1/gateways/gw-a/config"))["desired"] is None  # nothing stored


def test_a_group_push_by_tag_or_customer_gives_every_member_a_new_version(api: Api) -> None:
    api.registry.bind_gateway("gw-b", api.codes["b"])  # c1 now has gw-a and gw-b
    assert ok(api.send("PUT", "/api/v1/gateways/gw-a/tags", {"tags": ["north", "beta"]})) == \
        {"gateway_id": "gw-a", "tags": ["beta", "north"]}
    ok(api.send("PUT", "/api/v1/gateways/gw-c/tags", {"tags": ["north"]}))
    assert ok(api.get("/api/v1/gateways/gw-c/tags"))["tags"] == ["north"]
    answer = ok(api.send("PUT", "/api/v1/gateway-groups/north/config", {"heartbeat_interval_s": 15}))
    assert (answer["group"], answer["gateways"]) == ("north", 2)
    answer = ok(api.send("PUT", "/api/v1/gateway-groups/customer:c1/config", {"power_interval_s": 20}))
    assert answer["gateways"] == 2
    group = ok(api.get("/api/v1/gateway-groups/customer:c1"))
    assert (group["total"], group["drifting"], group["in_sync"], group["no_desired"]) == (2, 2, 0, 0)
    assert {m["gateway_id"]: m["desired_version"] for m in group["members"]} == {"gw-a": 2, "gw-b": 1}
    api.registry.record_reported_config("gw-b", 1, {}, timeutil.now_jst())
    assert ok(api.get("/api/v1/gateway-groups/customer:c1"))["in_sync"] == 1
    north = ok(api.get("/api/v1/gateway-groups/north"))
    assert [m["gateway_id"] for m in north["members"]] == ["gw-a", "gw-c"]
    entries = ok(api.get("/api/v1/audit?action=group_config"))["items"]
    assert [e["target"] for e in entries] == ["group:customer:c1", "group:north"]
    # An empty group, a bad tag or group name: refused, named, counted.
    counted = refused("put_group_config")
    empty = api.send("PUT", "/api/v1/gateway-groups/nobody/config", {"power_interval_s": 20})
    assert empty.status_code == 422 and empty.get_json()["detail"] == "group nobody has no gateways"
    bad = api.send("PUT", "/api/v1/gateway-groups/Bad%20Group/config", {"power_interval_s": 20})
    assert bad.status_code == 422 and "group" in bad.get_json()["detail"]
    assert refused("put_group_config") == counted + 2
    bad_tag = api.send("PUT", "/api/v1/gateways/gw-a/tags", {"tags": ["Not A Tag"]})
    assert bad_tag.status_code == 422 and "tags.0" in bad_tag.get_json()["detail"]


def test_customers_reach_their_own_gateways_and_group_only(api: Api) -> None:
    c1 = api.keys["c1"]
    assert ok(api.send("PUT", "/api/v1/gateways/gw-a/config", {"power_interval_s": 30}, key=c1))["desired"][
        "updated_by"] == "key:c1"
    assert api.send("PUT", "/api/v1/gateways/gw-c/config", {"power_interval_s": 30}, key=c1).status_code == 404
    assert api.send("POST", "/api/v1/gateways/gw-c/commands", {"command": "rejoin"}, key=c1).status_code == 404
    assert ok(api.send("PUT", "/api/v1/gateway-groups/customer:c1/config", {"power_interval_s": 30},
                       key=c1))["gateways"] == 1
    assert api.send("PUT", "/api/v1/gateway-groups/customer:c2/config", {"power_interval_s": 30},
                    key=c1).status_code == 403
    assert api.send("PUT", "/api/v1/gateway-groups/north/config", {"power_interval_s": 30}, key=c1).status_code == 403
    assert api.send("PUT", "/api/v1/gateways/gw-a/tags", {"tags": ["x"]}, key=c1).status_code == 403
    assert api.get("/api/v1/audit", key=c1).status_code == 403
    assert api.get("/api/v1/gateways/gw-unknown/config").status_code == 404


def test_a_command_is_queued_with_its_deadline_and_audited(api: Api) -> None:
    response = api.send("POST", "/api/v1/gateways/gw-a/commands",
                        {"command": "read_property", "args": {"epc": "E7"}, "timeout_s": 20})
    command = ok(response, 202)
    assert command["state"] == "queued" and command["requested_by"] == "key:admin (PMS_ADMIN_API_KEY)"
    assert response.headers["Location"] == f"/api/v1/gateways/gw-a/commands/{command['command_id']}"
    assert ok(api.get(response.headers["Location"]))["command_id"] == command["command_id"]
    page = ok(api.get("/api/v1/gateways/gw-a/commands"))
    assert page["total"] == 1 and page["items"][0]["args"] == {"epc": "E7"}
    # What device-manager does when the answer comes:
    api.registry.mark_command_sent(command["command_id"], timeutil.now_jst())
    api.registry.finish_command(command["command_id"], ok=True, at=timeutil.now_jst(), result={"value": "-1200"})
    done = ok(api.get(response.headers["Location"]))
    assert (done["state"], done["result"], done["reason"]) == ("succeeded", {"value": "-1200"}, None)
    audit = ok(api.get("/api/v1/audit?action=command"))["items"][0]
    assert (audit["target"], audit["outcome"], audit["detail"]["command"]) == ("gw-a", "succeeded", "read_property")
    assert api.get("/api/v1/gateways/gw-c/commands/" + command["command_id"]).status_code == 404


@pytest.mark.parametrize(("body", "says"), [
    ({"command": "reboot"}, "command: Input should be 'rejoin', 'backfill', 'read_property' or 'restart_link'"),
    ({"command": "read_property", "args": {}}, 'read_property takes {"epc": "E7"}'),
    ({"command": "read_property", "args": {"epc": "ZZ"}}, "epc must be a hex EPC such as E7, not 'ZZ'"),
    ({"command": "read_property", "args": {"epc": "C0"}}, "EPC C0 is not a property of the smart meter class"),
    ({"command": "backfill", "args": {"days": 0}}, "days must be a whole number from 1 to 99, not 0"),
    ({"command": "backfill", "args": {"from": "2026-06-01T00:00:00"}}, "from needs its UTC offset"),
    ({"command": "backfill", "args": {"from": "2026-06-02T00:00:00+09:00", "to": "2026-06-01T00:00:00+09:00"}},
     "to must come after its from"),
    ({"command": "rejoin", "args": {"now": True}}, "rejoin takes no args"),
    ({"command": "rejoin", "timeout_s": 0}, "timeout_s: Input should be greater than or equal to 1"),
    ({"command": "rejoin", "timeout_s": 86400}, "timeout_s: Input should be less than or equal to 3600"),
])
def test_a_bad_command_is_refused_with_a_sentence_and_counted(api: Api, body: dict[str, Any], says: str) -> None:
    counted = refused("post_command")
    response = api.send("POST", "/api/v1/gateways/gw-a/commands", body)
    assert response.status_code == 422 and says in response.get_json()["detail"]
    assert refused("post_command") == counted + 1
    assert ok(api.get("/api/v1/gateways/gw-a/commands"))["total"] == 0


def test_the_control_endpoints_are_in_the_openapi_document(api: Api) -> None:
    paths = ok(api.get("/openapi.json", key=ADMIN))["paths"]
    for path in ("/api/v1/gateways/{gateway_id}/config", "/api/v1/gateway-groups/{group}/config",
                 "/api/v1/gateway-groups/{group}", "/api/v1/gateways/{gateway_id}/tags",
                 "/api/v1/gateways/{gateway_id}/commands", "/api/v1/gateways/{gateway_id}/commands/{command_id}",
                 "/api/v1/audit"):
        assert path in paths, path
