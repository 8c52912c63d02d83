"""The console's alerting pages through the Flask test client: an alert acknowledged with a comment,
a rule's threshold edited and an override added, channels added (the secret on that one page only),
rotated, disabled and deleted; each form takes the API's step (the registry changes, an audit entry),
a bad form comes back naming the field, a customer's user sees its own, and nothing changes without
the form's CSRF token."""

from __future__ import annotations

from pms_common import timeutil
from tests.api.conftest import ADMIN, Api, form_post
from tests.api.test_api_alerts import fire


def _login(api: Api, username: str = "admin", password: str = ADMIN, lang: str = "en") -> None:
    response = form_post(api.client, "/login", {"username": username, "password": password, "lang": lang})
    assert response.status_code == 302, response.get_data(as_text=True)


def _page(api: Api, path: str, status: int = 200) -> str:
    response = api.client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)
    return str(response.get_data(as_text=True))


def _c1_user(api: Api) -> None:
    api.registry.create_user(username="c1-operator", password="c1-password-long", created_at=timeutil.now_jst(),
                             customer_id="c1")
    _login(api, "c1-operator", "c1-password-long")


def test_an_operator_acknowledges_a_firing_alert_with_a_comment(api: Api) -> None:
    alert = fire(api, api.codes["a"])
    pending = fire(api, api.codes["b"], "data_gap", None, fired=False)
    _login(api)
    page = _page(api, "/alerts")
    assert 'id="nav-alerts"' in page and f'data-alert="{alert.alert_id}"' in page
    assert f'data-alert="{pending.alert_id}"' in page and page.count('class="inline ack-form"') == 1
    assert "Plant a" in page and "Pending" in page and "Firing" in page
    response = form_post(api.client, f"/alerts/{alert.alert_id}/ack", {"comment": "crew on the way"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/alerts")
    stored = api.registry.get_alert(alert.alert_id)  # type: ignore[arg-type]
    assert stored is not None and (stored.acknowledged_by, stored.ack_comment) == ("admin", "crew on the way")
    page = _page(api, "/alerts")
    assert f"Alert {alert.alert_id} acknowledged" in page and "crew on the way" in page
    assert 'class="inline ack-form"' not in page
    # A pending one cannot be: said on the page; the filter shows only what it names.
    form_post(api.client, f"/alerts/{pending.alert_id}/ack", {"comment": "x"})
    assert "Not possible: alert" in _page(api, "/alerts")
    filtered = _page(api, "/alerts?state=pending")
    assert f'data-alert="{pending.alert_id}"' in filtered and f'data-alert="{alert.alert_id}"' not in filtered
    assert f'data-alert="{alert.alert_id}"' not in _page(api, "/alerts?kind=data_gap")
    # Without the form's token nothing happens.
    other = fire(api, api.codes["c"], "gateway_offline", "gw-c")
    assert api.client.post(f"/alerts/{other.alert_id}/ack", data={"comment": "x"}).status_code == 403
    assert api.registry.get_alert(other.alert_id).acknowledged_at is None  # type: ignore[arg-type,union-attr]


def test_alerts_read_in_japanese_and_a_customer_sees_only_its_own(api: Api) -> None:
    mine = fire(api, api.codes["a"])
    theirs = fire(api, api.codes["c"], "gateway_offline", "gw-c")
    _c1_user(api)
    api.client.get("/lang/ja")
    page = _page(api, "/alerts")
    assert f'data-alert="{mine.alert_id}"' in page and f'data-alert="{theirs.alert_id}"' not in page
    assert "発生中" in page and "確認する" in page
    assert form_post(api.client, f"/alerts/{theirs.alert_id}/ack", {"comment": "x"}).status_code == 404
    assert api.registry.get_alert(theirs.alert_id).acknowledged_at is None  # type: ignore[arg-type,union-attr]


def test_an_operator_edits_a_rules_threshold_and_adds_an_override(api: Api) -> None:
    rule = next(r for r in api.registry.list_alert_rules("no_generation") if r.scope == "global")
    _login(api)
    listing = _page(api, "/alert-rules")
    assert listing.count('<tr id="rule-') == len(api.registry.list_alert_rules())
    page = _page(api, f"/alert-rules/{rule.rule_id}")
    assert 'name="param:irradiance_w_m2"' in page and 'value="350"' in page
    form = {"enabled": "1", "severity": rule.severity, "raise_for_s": str(rule.raise_for_s),
            "clear_for_s": str(rule.clear_for_s),
            **{f"param:{name}": ("1" if value is True else "" if value is False else str(value))
               for name, value in rule.params.items()}}
    response = form_post(api.client, f"/alert-rules/{rule.rule_id}", {**form, "param:irradiance_w_m2": "400"})
    assert response.status_code == 302, response.get_data(as_text=True)
    stored = api.registry.get_alert_rule(rule.rule_id)
    assert stored is not None and stored.params["irradiance_w_m2"] == 400 and stored.updated_by == "user:admin"
    assert {k: v for k, v in stored.params.items() if k != "irradiance_w_m2"} == \
        {k: v for k, v in rule.params.items() if k != "irradiance_w_m2"}
    assert "irradiance_w_m2 = 400" in _page(api, "/alert-rules")
    # A bad value comes back on the form, naming the setting; nothing changes.
    response = form_post(api.client, f"/alert-rules/{rule.rule_id}", {**form, "param:irradiance_w_m2": "9000"})
    assert response.status_code == 422 and "irradiance_w_m2" in response.get_data(as_text=True)
    response = form_post(api.client, f"/alert-rules/{rule.rule_id}", {**form, "param:irradiance_w_m2": "lots"})
    assert response.status_code == 422 and "params.irradiance_w_m2: a number" in response.get_data(as_text=True)
    assert api.registry.get_alert_rule(rule.rule_id).params["irradiance_w_m2"] == 400  # type: ignore[union-attr]
    # An override for plant b starts as a copy of the default, with the severity chosen.
    response = form_post(api.client, "/alert-rules", {"kind": "no_generation", "scope": "plant",
                                                      "scope_value": api.codes["b"], "severity": "critical"})
    assert response.status_code == 302
    override = next(r for r in api.registry.list_alert_rules("no_generation") if r.scope == "plant")
    assert (override.scope_value, override.severity, override.params) == (api.codes["b"], "critical", stored.params)
    assert response.headers["Location"].endswith(f"/alert-rules/{override.rule_id}")
    response = form_post(api.client, "/alert-rules", {"kind": "no_generation", "scope": "plant",
                                                      "scope_value": "pss99999999"})
    assert response.status_code == 422 and "scope_value: no plant pss99999999" in response.get_data(as_text=True)
    assert form_post(api.client, f"/alert-rules/{override.rule_id}/delete", {}).status_code == 302
    assert api.registry.get_alert_rule(override.rule_id) is None
    form_post(api.client, f"/alert-rules/{rule.rule_id}/delete", {})
    assert "cannot be deleted" in _page(api, "/alert-rules") and api.registry.get_alert_rule(rule.rule_id) is not None


def test_a_customers_user_reads_the_defaults_and_changes_only_its_own_rules(api: Api) -> None:
    rule = next(r for r in api.registry.list_alert_rules("no_generation") if r.scope == "global")
    _c1_user(api)
    page = _page(api, f"/alert-rules/{rule.rule_id}")
    assert 'id="rule-read-only"' in page and 'id="rule-save"' not in page
    assert form_post(api.client, f"/alert-rules/{rule.rule_id}", {"param:irradiance_w_m2": "1"}).status_code == 403
    assert api.registry.get_alert_rule(rule.rule_id).params["irradiance_w_m2"] == 350  # type: ignore[union-attr]
    assert '<option value="tag"' not in _page(api, "/alert-rules")
    response = form_post(api.client, "/alert-rules", {"kind": "no_generation", "scope": "plant",
                                                      "scope_value": api.codes["c"]})
    assert response.status_code == 422  # another customer's plant is no plant
    response = form_post(api.client, "/alert-rules", {"kind": "no_generation", "scope": "customer",
                                                      "scope_value": "c1"})
    assert response.status_code == 302


def test_channels_are_added_with_the_secret_shown_once_rotated_disabled_and_deleted(api: Api) -> None:
    _login(api)
    response = form_post(api.client, "/channels", {"kind": "webhook", "name": "ops hook", "language": "en",
                                                   "url": "https://hooks.example.jp/pms", "min_severity": "warning",
                                                   "customer_id": "c1"})
    assert response.status_code == 200, response.get_data(as_text=True)
    channel = api.registry.list_channels("c1")[0]
    secret = channel.config["secrets"][0]
    assert (channel.name, channel.kind, channel.customer_id, channel.config["url"]) == \
        ("ops hook", "webhook", "c1", "https://hooks.example.jp/pms")
    assert secret in response.get_data(as_text=True) and 'id="new-secret"' in response.get_data(as_text=True)
    listing = _page(api, "/channels")
    assert secret not in listing and f'data-channel="{channel.channel_id}"' in listing and secret[-4:] in listing
    response = form_post(api.client, f"/channels/{channel.channel_id}/rotate", {})
    rotated = api.registry.get_channel(channel.channel_id)
    assert rotated is not None and rotated.config["secrets"][1] == secret
    assert rotated.config["secrets"][0] in response.get_data(as_text=True)
    assert form_post(api.client, f"/channels/{channel.channel_id}/disable", {}).status_code == 302
    assert api.registry.get_channel(channel.channel_id).enabled is False  # type: ignore[union-attr]
    assert form_post(api.client, f"/channels/{channel.channel_id}/enable", {}).status_code == 302
    assert api.registry.get_channel(channel.channel_id).enabled is True  # type: ignore[union-attr]
    response = form_post(api.client, "/channels", {"kind": "email", "name": "night", "to": "ops@example.jp, nope"})
    assert response.status_code == 422 and "&#39;nope&#39; is not an e-mail address" in response.get_data(as_text=True)
    response = form_post(api.client, "/channels", {"kind": "email", "name": "night",
                                                   "to": "ops@example.jp, boss@example.jp"})
    assert response.status_code == 200 and 'id="new-secret"' not in response.get_data(as_text=True)
    mail = next(c for c in api.registry.list_channels(include_all=True) if c.kind == "email")
    assert mail.config["to"] == ["ops@example.jp", "boss@example.jp"] and mail.customer_id is None
    response = form_post(api.client, "/channels", {"kind": "webhook", "name": "bad", "url": "https://u:p@x.example/"})
    assert response.status_code == 422 and "credentials" in response.get_data(as_text=True)
    assert form_post(api.client, f"/channels/{channel.channel_id}/delete", {}).status_code == 302
    assert api.registry.get_channel(channel.channel_id) is None
    assert api.client.post(f"/channels/{mail.channel_id}/delete").status_code == 403  # no CSRF token
    assert api.registry.get_channel(mail.channel_id) is not None


def test_a_customers_user_adds_its_own_channel_and_sees_no_one_elses(api: Api) -> None:
    api.registry.create_channel(customer_id="c2", kind="email", name="c2 mail", enabled=True, language="ja",
                                min_severity="warning", config={"to": ["c2@example.jp"]}, group_wait_s=30,
                                group_interval_s=300, at=timeutil.now_jst())
    _c1_user(api)
    assert "c2 mail" not in _page(api, "/channels")
    response = form_post(api.client, "/channels", {"kind": "webhook", "name": "mine", "url": "http://10.0.0.5:8080/h",
                                                   "customer_id": "c2"})
    assert response.status_code == 200
    assert [c.name for c in api.registry.list_channels("c1")] == ["mine"]  # its own, whatever the form said
    other = api.registry.list_channels("c2")[0]
    assert form_post(api.client, f"/channels/{other.channel_id}/delete", {}).status_code == 404
