"""The alerting API: rules (the shipped defaults, overrides, what a customer key may touch, params
checked), alerts (listed by scope and filter, acknowledged only while firing, the acknowledgement
logged as an event), channels (webhook and e-mail, URL and address checks, the secret shown on
create and rotate only, the previous secret kept for one rotation). These stop at the registry;
the alerts service reads what they write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pms_api.alert_models import RULE_KINDS
from pms_common import timeutil
from pms_registry.records import AlertRecord
from tests.api.conftest import PROBLEM, Api


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def refusal(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    return str(response.get_json()["detail"])


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("pms_api_alerting_refused_total", {"reason": reason}) or 0.0


def default_rule(api: Api, kind: str) -> dict[str, Any]:
    rules = ok(api.get(f"/api/v1/alert-rules?kind={kind}"))["items"]
    found: dict[str, Any] = next(rule for rule in rules if rule["scope"] == "global")
    return found


def fire(api: Api, code: str, kind: str = "no_generation", gateway_id: str | None = "gw-a",
         *, fired: bool = True) -> AlertRecord:
    """An alert episode of `kind` at plant `code`, through the registry's own steps (as the alerts service
    takes them): saved pending, then fired unless `fired` is False."""
    now = timeutil.now_jst()
    rule = next(r for r in api.registry.list_alert_rules(kind) if r.scope == "global")
    params = {"irradiance_w_m2": 612, "threshold_w_m2": 350, "sold_w": 0, "for_s": 1800}
    pending = api.registry.save_alert(AlertRecord(
        alert_id=None, kind=kind, subject=code, service_code=code, gateway_id=gateway_id, rule_id=rule.rule_id,
        severity=rule.severity, state="pending", pending_since=now - timedelta(minutes=30), firing_since=None,
        clear_since=None, resolved_at=None, flapping=False, raise_times=[], acknowledged_at=None,
        acknowledged_by=None, ack_comment=None, event_id=None, params=params, updated_at=None))
    if not fired:
        return pending
    record, _ = api.registry.fire_alert(pending, at=now, message=f"{code}: no generation", params=params)
    return record


# ---- rules -------------------------------------------------------------------------------------------
def test_the_shipped_defaults_are_listed_one_global_rule_per_kind(api: Api) -> None:
    rules = ok(api.get("/api/v1/alert-rules"))["items"]
    assert sorted(rule["kind"] for rule in rules) == sorted(RULE_KINDS)
    assert {rule["scope"] for rule in rules} == {"global"}
    no_generation = default_rule(api, "no_generation")
    assert no_generation["params"]["irradiance_w_m2"] == 350
    assert ok(api.get(f"/api/v1/alert-rules/{no_generation['rule_id']}")) == no_generation
    assert ok(api.get("/api/v1/alert-rules", api.keys["c1"]))["items"] == rules  # defaults: readable by all


def test_an_admin_overrides_edits_and_deletes_a_rule_and_each_change_is_audited(api: Api) -> None:
    default = default_rule(api, "no_generation")
    body = {"kind": "no_generation", "scope": "plant", "scope_value": api.codes["a"], "severity": "critical",
            "raise_for_s": 3600, "clear_for_s": 600, "params": {**default["params"], "irradiance_w_m2": 400}}
    created = ok(api.send("POST", "/api/v1/alert-rules", body), 201)
    assert (created["scope"], created["scope_value"], created["params"]["irradiance_w_m2"]) == \
        ("plant", api.codes["a"], 400)
    assert created["updated_by"] == "key:admin (PMS_ADMIN_API_KEY)"
    stored = api.registry.get_alert_rule(created["rule_id"])
    assert stored is not None and stored.params["irradiance_w_m2"] == 400 and stored.severity == "critical"
    assert "a plant rule" in refusal(api.send("POST", "/api/v1/alert-rules", body), 409)
    changed = ok(api.send("PUT", f"/api/v1/alert-rules/{created['rule_id']}",
                          {"enabled": False, "raise_for_s": 7200}))
    assert (changed["enabled"], changed["raise_for_s"], changed["clear_for_s"]) == (False, 7200, 600)
    # The global default's threshold: 350 → 400, the other settings kept.
    edited = ok(api.send("PUT", f"/api/v1/alert-rules/{default['rule_id']}",
                         {"params": {**default["params"], "irradiance_w_m2": 400}}))
    assert edited["params"]["irradiance_w_m2"] == 400 and edited["severity"] == default["severity"]
    assert api.registry.get_alert_rule(default["rule_id"]).params["irradiance_w_m2"] == 400  # type: ignore[union-attr]
    assert api.send("DELETE", f"/api/v1/alert-rules/{created['rule_id']}").status_code == 204
    assert api.registry.get_alert_rule(created["rule_id"]) is None
    assert "cannot be deleted" in refusal(api.send("DELETE", f"/api/v1/alert-rules/{default['rule_id']}"), 409)
    audit = ok(api.get("/api/v1/audit?limit=10"))["items"]
    assert [e["action"] for e in audit if e["action"].startswith("alert_rule")] == \
        ["alert_rule_delete", "alert_rule_update", "alert_rule_update", "alert_rule_create"]


def test_a_customer_key_changes_only_its_own_customer_and_plants_rules(api: Api) -> None:
    c1, c2 = api.keys["c1"], api.keys["c2"]
    default = default_rule(api, "gateway_offline")
    base = {"kind": "gateway_offline", "severity": "warning", "raise_for_s": 300, "clear_for_s": 120,
            "params": default["params"]}
    mine = ok(api.send("POST", "/api/v1/alert-rules", {**base, "scope": "plant", "scope_value": api.codes["a"]},
                       c1), 201)
    ok(api.send("POST", "/api/v1/alert-rules", {**base, "scope": "customer", "scope_value": "c1"}, c1), 201)
    before = refused("forbidden")
    assert "no plant" in refusal(api.send("POST", "/api/v1/alert-rules",
                                          {**base, "scope": "plant", "scope_value": api.codes["c"]}, c1), 422)
    assert "no customer c2" in refusal(api.send("POST", "/api/v1/alert-rules",
                                                {**base, "scope": "customer", "scope_value": "c2"}, c1), 422)
    assert "admin" in refusal(api.send("POST", "/api/v1/alert-rules",
                                       {**base, "scope": "tag", "scope_value": "east"}, c1), 403)
    assert "admin" in refusal(api.send("PUT", f"/api/v1/alert-rules/{default['rule_id']}", {"enabled": False}, c1),
                              403)
    assert refused("forbidden") == before + 2
    # c2 neither sees nor touches c1's rules; c1 sees the defaults and its own two.
    assert refusal(api.get(f"/api/v1/alert-rules/{mine['rule_id']}", c2), 404)
    assert refusal(api.send("DELETE", f"/api/v1/alert-rules/{mine['rule_id']}", key=c2), 404)
    assert [r["scope"] for r in ok(api.get("/api/v1/alert-rules?kind=gateway_offline", c1))["items"]] == \
        ["global", "customer", "plant"]
    assert [r["scope"] for r in ok(api.get("/api/v1/alert-rules?kind=gateway_offline", c2))["items"]] == ["global"]
    # The admin's tag rule is the operator's: not listed to customers.
    ok(api.send("POST", "/api/v1/alert-rules", {**base, "scope": "tag", "scope_value": "east"}), 201)
    assert [r["scope"] for r in ok(api.get("/api/v1/alert-rules?kind=gateway_offline", c2))["items"]] == ["global"]
    assert ok(api.send("PUT", f"/api/v1/alert-rules/{mine['rule_id']}", {"severity": "critical"}, c1))["severity"] \
        == "critical"


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "no_such_kind"}, "kind"),
    ({"scope": "global"}, "scope"),
    ({"raise_for_s": -1}, "raise_for_s"),
    ({"clear_for_s": 10**9}, "clear_for_s"),
    ({"severity": "disaster"}, "severity"),
    ({"params": {"irradiance_w_m2": 5000}}, "irradiance_w_m2"),
    ({"params": {"irradiance_w_m2": "high"}}, "irradiance_w_m2"),
    ({"params": {"Bad Key": 1}}, "Bad Key"),
    ({"color": "red"}, "color"),
])
def test_a_bad_rule_is_refused_with_a_sentence_naming_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    good = {"kind": "no_generation", "scope": "plant", "scope_value": api.codes["a"], "severity": "warning",
            "raise_for_s": 1800, "clear_for_s": 600, "params": {"irradiance_w_m2": 350}}
    detail = refusal(api.send("POST", "/api/v1/alert-rules", {**good, **body}), 422)
    assert field in detail
    assert [r["scope"] for r in ok(api.get("/api/v1/alert-rules?kind=no_generation"))["items"]] == ["global"]


# ---- alerts ------------------------------------------------------------------------------------------
def test_alerts_are_listed_by_scope_and_filter(api: Api) -> None:
    at_a = fire(api, api.codes["a"])
    at_c = fire(api, api.codes["c"], "gateway_offline", "gw-c")
    pending = fire(api, api.codes["b"], "data_gap", None, fired=False)
    listed = ok(api.get("/api/v1/alerts"))
    assert listed["total"] == 3 and {a["alert_id"] for a in listed["items"]} == \
        {at_a.alert_id, at_c.alert_id, pending.alert_id}
    assert [a["alert_id"] for a in ok(api.get("/api/v1/alerts?state=firing&kind=no_generation"))["items"]] == \
        [at_a.alert_id]
    assert ok(api.get("/api/v1/alerts?state=pending"))["total"] == 1
    assert ok(api.get("/api/v1/alerts?state=resolved"))["total"] == 0
    assert ok(api.get("/api/v1/alerts?state=open"))["total"] == 3  # pending or firing
    assert ok(api.get(f"/api/v1/alerts?service_code={api.codes['c']}"))["total"] == 1
    c1 = ok(api.get("/api/v1/alerts", api.keys["c1"]))
    assert c1["total"] == 2 and at_c.alert_id not in {a["alert_id"] for a in c1["items"]}
    one = ok(api.get(f"/api/v1/alerts/{at_a.alert_id}", api.keys["c1"]))
    assert (one["state"], one["kind"], one["service_code"], one["params"]["irradiance_w_m2"]) == \
        ("firing", "no_generation", api.codes["a"], 612)
    assert one["text"] and one["firing_since"] is not None and one["flapping"] is False
    assert refusal(api.get(f"/api/v1/alerts/{at_a.alert_id}", api.keys["c2"]), 404)
    assert "state" in refusal(api.get("/api/v1/alerts?state=burning"), 422)


def test_only_a_firing_alert_is_acknowledged_and_the_acknowledgement_is_an_event(api: Api) -> None:
    alert = fire(api, api.codes["a"])
    acked = ok(api.send("POST", f"/api/v1/alerts/{alert.alert_id}/ack", {"comment": "crew on the way"},
                        api.keys["c1"]))
    assert (acked["state"], acked["acknowledged_by"], acked["ack_comment"]) == ("firing", "c1", "crew on the way")
    assert acked["acknowledged_at"] is not None
    stored = api.registry.get_alert(alert.alert_id)  # type: ignore[arg-type]
    assert stored is not None and stored.acknowledged_by == "c1" and stored.ack_comment == "crew on the way"
    logged = api.registry.list_events(limit=10)
    assert any(e.kind == "alert_acknowledged" and e.params.get("comment") == "crew on the way" for e in logged)
    # Another customer cannot acknowledge it; a pending and a resolved alert cannot be acknowledged.
    assert refusal(api.send("POST", f"/api/v1/alerts/{alert.alert_id}/ack", {"comment": "x"}, api.keys["c2"]), 404)
    before = refused("not_firing")
    pending = fire(api, api.codes["b"], "data_gap", None, fired=False)
    assert "pending" in refusal(api.send("POST", f"/api/v1/alerts/{pending.alert_id}/ack", {"comment": "x"}), 409)
    resolved, _ = api.registry.resolve_alert(api.registry.get_alert(alert.alert_id),  # type: ignore[arg-type]
                                             at=timeutil.now_jst())
    assert "resolved" in refusal(api.send("POST", f"/api/v1/alerts/{resolved.alert_id}/ack", {}), 409)
    assert refused("not_firing") == before + 2
    assert "comment" in refusal(api.send("POST", f"/api/v1/alerts/{alert.alert_id}/ack", {"comment": "x" * 1001}),
                                422)
    assert refusal(api.send("POST", "/api/v1/alerts/999999/ack", {}), 404)


# ---- channels ----------------------------------------------------------------------------------------
WEBHOOK = {"kind": "webhook", "name": "ops hook", "url": "https://hooks.example.jp/pms"}


def test_a_webhook_secret_is_shown_on_create_and_rotate_only_and_the_previous_one_kept_once(api: Api) -> None:
    created = ok(api.send("POST", "/api/v1/channels", WEBHOOK, api.keys["c1"]), 201)
    first = created["secret"]
    assert first.startswith("whsec_") and len(first) > 40
    assert (created["customer_id"], created["secret_hint"], created["previous_secret_valid"]) == \
        ("c1", f"…{first[-4:]}", False)
    assert (created["language"], created["min_severity"], created["group_wait_s"], created["group_interval_s"]) == \
        ("ja", "warning", 30, 300)
    channel_id = created["channel_id"]
    stored = api.registry.get_channel(channel_id)
    assert stored is not None and stored.config == {"url": WEBHOOK["url"], "secrets": [first]}
    for answer in (api.get(f"/api/v1/channels/{channel_id}", api.keys["c1"]), api.get("/api/v1/channels")):
        assert first not in answer.get_data(as_text=True) and "secret\"" not in answer.get_data(as_text=True)
    second = ok(api.send("POST", f"/api/v1/channels/{channel_id}/rotate-secret", key=api.keys["c1"]))
    assert second["secret"] not in (first, None) and second["previous_secret_valid"] is True
    assert api.registry.get_channel(channel_id).config["secrets"] == [second["secret"], first]  # type: ignore[union-attr]
    third = ok(api.send("POST", f"/api/v1/channels/{channel_id}/rotate-secret"))
    assert api.registry.get_channel(channel_id).config["secrets"] == \
        [third["secret"], second["secret"]]  # type: ignore[union-attr]
    audit = [e["action"] for e in ok(api.get("/api/v1/audit?limit=5"))["items"]]
    assert audit[:3] == ["channel_rotate_secret", "channel_rotate_secret", "channel_create"]


def test_channels_are_a_customers_own_and_can_be_changed_disabled_and_deleted(api: Api) -> None:
    c1, c2 = api.keys["c1"], api.keys["c2"]
    mail = ok(api.send("POST", "/api/v1/channels", {"kind": "email", "name": "night shift", "language": "en",
                                                    "to": ["ops@example.jp", "boss@example.co.jp"],
                                                    "min_severity": "critical"}, c1), 201)
    assert "secret" not in mail and mail["to"] == ["ops@example.jp", "boss@example.co.jp"]
    operators = ok(api.send("POST", "/api/v1/channels", {**WEBHOOK, "name": "operator"}), 201)
    assert operators["customer_id"] is None
    c2s = ok(api.send("POST", "/api/v1/channels", {**WEBHOOK, "name": "c2 hook"}, c2), 201)
    assert [c["name"] for c in ok(api.get("/api/v1/channels", c1))["items"]] == ["night shift"]
    assert {c["name"] for c in ok(api.get("/api/v1/channels"))["items"]} == {"night shift", "operator", "c2 hook"}
    assert refusal(api.get(f"/api/v1/channels/{c2s['channel_id']}", c1), 404)
    assert refusal(api.send("POST", f"/api/v1/channels/{c2s['channel_id']}/rotate-secret", key=c1), 404)
    assert refusal(api.send("PUT", f"/api/v1/channels/{operators['channel_id']}", {"enabled": False}, c1), 404)
    changed = ok(api.send("PUT", f"/api/v1/channels/{mail['channel_id']}",
                          {"enabled": False, "to": ["ops@example.jp"]}, c1))
    assert (changed["enabled"], changed["to"]) == (False, ["ops@example.jp"])
    stored = api.registry.get_channel(mail["channel_id"])
    assert stored is not None and not stored.enabled and stored.config["to"] == ["ops@example.jp"]
    assert "email channel" in refusal(api.send("PUT", f"/api/v1/channels/{mail['channel_id']}",
                                               {"url": "https://x.example.jp/"}, c1), 422)
    assert "only webhooks" in refusal(api.send("POST", f"/api/v1/channels/{mail['channel_id']}/rotate-secret"), 422)
    assert api.send("DELETE", f"/api/v1/channels/{mail['channel_id']}", key=c1).status_code == 204
    assert api.registry.get_channel(mail["channel_id"]) is None
    assert refusal(api.get(f"/api/v1/channels/{mail['channel_id']}", c1), 404)


@pytest.mark.parametrize(("body", "words"), [
    ({"url": "ftp://hooks.example.jp/"}, "http:// or https://"),
    ({"url": "https://user:pw@hooks.example.jp/"}, "credentials"),
    ({"url": "https:///nohost"}, "no host"),
    ({"url": "https://hooks.example.jp:99999/"}, "port"),
    ({"url": None}, "needs url"),
    ({"to": ["ops@example.jp"]}, "no to"),
    ({"kind": "email", "url": None, "to": ["not an address"]}, "'not an address' is not an e-mail address"),
    ({"kind": "email", "url": None, "to": ["a@example.jp", "a@example.jp"]}, "twice"),
    ({"kind": "email", "url": None, "to": []}, "to"),
    ({"kind": "sms"}, "kind"),
    ({"min_severity": "loud"}, "min_severity"),
    ({"customer_id": "c9"}, "no customer c9"),
])
def test_a_bad_channel_is_refused_with_a_sentence_naming_the_field(api: Api, body: dict[str, Any],
                                                                   words: str) -> None:
    sent = {name: value for name, value in {**WEBHOOK, **body}.items() if value is not None}
    assert words in refusal(api.send("POST", "/api/v1/channels", sent), 422)
    assert ok(api.get("/api/v1/channels"))["items"] == []


def test_alerting_needs_a_key_and_is_in_the_openapi_document(api: Api) -> None:
    for path in ("/api/v1/alert-rules", "/api/v1/alerts", "/api/v1/channels"):
        assert refusal(api.get(path, key=None), 401)
    paths = ok(api.client.get("/openapi.json"))["paths"]
    for path, methods in {"/api/v1/alert-rules": {"get", "post"}, "/api/v1/alert-rules/{rule_id}": {"get", "put",
                                                                                                    "delete"},
                          "/api/v1/alerts": {"get"}, "/api/v1/alerts/{alert_id}": {"get"},
                          "/api/v1/alerts/{alert_id}/ack": {"post"}, "/api/v1/channels": {"get", "post"},
                          "/api/v1/channels/{channel_id}": {"get", "put", "delete"},
                          "/api/v1/channels/{channel_id}/rotate-secret": {"post"}}.items():
        assert methods <= set(paths[path]), path
