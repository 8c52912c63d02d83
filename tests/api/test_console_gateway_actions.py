"""The gateway page's actions through the Flask test client: a config push and a command from a form
land in the registry exactly as the API's would (versioned, queued, audited), a bad form is answered
on the page with the field named, and a customer cannot act on another customer's gateway."""

from __future__ import annotations

from pms_common import timeutil
from tests.api.conftest import ADMIN, Api, form_post


def _login(api: Api, username: str = "admin", password: str = ADMIN, lang: str = "en") -> None:
    response = form_post(api.client, "/login", {"username": username, "password": password, "lang": lang})
    assert response.status_code == 302, response.get_data(as_text=True)


def test_a_config_pushed_from_the_gateway_page_is_a_new_audited_desired_version(api: Api) -> None:
    _login(api)
    response = form_post(api.client, "/gateways/gw-a/config",
                         {"power_interval_s": "10", "heartbeat_interval_s": "", "log_level": "DEBUG"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/gateways/gw-a#config")
    state = api.registry.config_state("gw-a")
    assert state.desired is not None and state.desired.version == 1 and state.drift
    assert state.desired.document["power_interval_s"] == 10.0
    assert state.desired.document["log_level"] == "DEBUG"
    assert state.desired.document["heartbeat_interval_s"] == 30.0  # blank: kept (the collector's default)
    assert state.desired.updated_by == "user:admin"
    page = api.client.get("/gateways/gw-a").get_data(as_text=True)
    assert "Configuration pushed" in page and "Drift: the gateway has not reported" in page
    entries, _ = api.registry.list_audit(target="gw-a")
    assert [(e.actor, e.action, e.detail) for e in entries] == [
        ("user:admin", "config", {"power_interval_s": 10.0, "log_level": "DEBUG"})]
    # The same push through the API gives the next version: one history, two doors.
    put = api.send("PUT", "/api/v1/gateways/gw-a/config", {"power_interval_s": 20})
    assert put.get_json()["desired"]["version"] == 2


def test_a_bad_config_form_names_the_field_and_changes_nothing(api: Api) -> None:
    _login(api)
    for form, field in (({"power_interval_s": "0.2"}, "power_interval_s"), ({"log_level": "LOUD"}, "log_level"),
                        ({}, "name at least one")):
        response = form_post(api.client, "/gateways/gw-a/config", form)
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert "Please check the form" in page and field in page, page
    assert api.registry.config_state("gw-a").desired is None
    assert api.registry.list_audit(target="gw-a")[1] == 0


def test_a_command_from_the_gateway_page_is_queued_with_its_deadline_and_audited(api: Api) -> None:
    _login(api, lang="ja")
    before = timeutil.now_jst()
    response = form_post(api.client, "/gateways/gw-a/commands",
                         {"command": "read_property", "epc": "e7", "timeout_s": "45"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/gateways/gw-a#commands")
    commands, total = api.registry.list_commands("gw-a")
    assert total == 1
    command = commands[0]
    assert (command.command, command.args, command.state) == ("read_property", {"epc": "E7"}, "queued")
    assert 44 <= (command.deadline - before).total_seconds() <= 46
    page = api.client.get("/gateways/gw-a").get_data(as_text=True)
    assert "操作を受け付けました" in page and "プロパティ読出" in page and "待機中" in page
    assert f'data-command="{command.command_id}"' in page
    backfill = form_post(api.client, "/gateways/gw-a/commands",
                         {"command": "backfill", "from": "2026-11-30", "to": "2026-12-01", "timeout_s": "60"})
    assert backfill.status_code == 302
    newest = api.registry.list_commands("gw-a")[0][0]
    assert newest.args == {"from": "2026-11-30T00:00:00+09:00", "to": "2026-12-02T00:00:00+09:00"}
    assert [e.action for e in api.registry.list_audit(target="gw-a")[0]] == ["command", "command"]
    audit_page = api.client.get("/audit").get_data(as_text=True)
    assert "user:admin" in audit_page and audit_page.count('data-audit="') == 2


def test_bad_command_forms_are_refused_on_the_page(api: Api) -> None:
    _login(api)
    for form, words in (({"command": "read_property", "epc": "ZZ"}, "hex EPC"),
                        ({"command": "read_property", "epc": "01"}, "not a property"),
                        ({"command": "backfill", "from": "yesterday"}, "YYYY-MM-DD"),
                        ({"command": "self_destruct"}, "command"),
                        ({"command": "rejoin", "timeout_s": "0"}, "timeout_s")):
        response = form_post(api.client, "/gateways/gw-a/commands", form)
        assert response.status_code == 422, form
        assert words in response.get_data(as_text=True), form
    assert api.registry.list_commands("gw-a")[1] == 0


def test_a_customer_acts_on_its_own_gateways_only_and_sees_no_audit_log(api: Api) -> None:
    now = timeutil.now_jst()
    api.registry.create_user(username="c1-operator", password="c1-password-long", created_at=now, customer_id="c1")
    _login(api, "c1-operator", "c1-password-long")
    assert form_post(api.client, "/gateways/gw-c/commands", {"command": "rejoin"}).status_code == 404
    assert form_post(api.client, "/gateways/gw-c/config", {"power_interval_s": "5"}).status_code == 404
    assert api.registry.list_commands("gw-c")[1] == 0 and api.registry.config_state("gw-c").desired is None
    assert form_post(api.client, "/gateways/gw-a/commands", {"command": "rejoin"}).status_code == 302
    assert api.registry.list_commands("gw-a")[0][0].requested_by == "user:c1-operator"
    assert api.client.get("/audit").status_code == 404
    assert 'id="nav-audit"' not in api.client.get("/gateways/gw-a").get_data(as_text=True)


def test_a_form_without_its_csrf_token_runs_nothing(api: Api) -> None:
    _login(api)
    assert api.client.post("/gateways/gw-a/commands", data={"command": "rejoin"}).status_code == 403
    assert api.registry.list_commands("gw-a")[1] == 0
