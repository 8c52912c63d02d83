"""The console's rollout pages through the Flask test client: admins only, the buttons take the API's
step (state in the registry, an audit entry), a step the rollout's state refuses is said on the page,
and a button pressed without the form's CSRF token changes nothing."""

from __future__ import annotations

from pms_common import timeutil
from pms_registry.rollouts import RolloutRecord
from tests.api.conftest import ADMIN, Api, form_post

SETTINGS = {"success_threshold": 0.9, "error_threshold": 0.1, "error_action": "pause", "min_group_size": 1,
            "deadline_s": 60.0, "health_timeout_s": 30.0, "window": "any"}


def _login(api: Api, username: str = "admin", password: str = ADMIN) -> None:
    response = form_post(api.client, "/login", {"username": username, "password": password, "lang": "en"})
    assert response.status_code == 302, response.get_data(as_text=True)


def _rollout(api: Api) -> RolloutRecord:
    now = timeutil.now_jst()
    for gateway_id in ("gw-a", "gw-c"):
        api.registry.record_gateway_status(gateway_id, "online", now)
    return api.registry.create_rollout(image_sha256="a" * 64, version="2.0.0", target={"gateways": ["gw-a", "gw-c"]},
                                       group_sizes=[50, 100], created_by="user:admin", at=now, **SETTINGS)


def test_an_admin_pauses_resumes_and_cancels_a_rollout_from_its_page(api: Api) -> None:
    rollout = _rollout(api)
    _login(api)
    listing = api.client.get("/rollouts").get_data(as_text=True)
    assert f'data-rollout="{rollout.rollout_id}"' in listing and 'id="nav-rollouts"' in listing
    page = api.client.get(f"/rollouts/{rollout.rollout_id}").get_data(as_text=True)
    assert page.count('<tr data-gateway="') == 2 and page.count('<tr data-group="') == 2
    for action, state in (("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")):
        response = form_post(api.client, f"/rollouts/{rollout.rollout_id}/{action}", {})
        assert response.status_code == 302 and response.headers["Location"].endswith(f"/rollouts/{rollout.rollout_id}")
        found = api.registry.rollout(rollout.rollout_id)
        assert found is not None and found.state == state
    entries, _ = api.registry.list_audit(target=rollout.rollout_id)
    assert sorted(e.action for e in entries) == ["rollout_cancel", "rollout_pause", "rollout_resume"]
    assert {e.actor for e in entries} == {"user:admin"}
    # A cancelled rollout cannot be resumed: said on the page, nothing changes.
    response = form_post(api.client, f"/rollouts/{rollout.rollout_id}/resume", {})
    assert response.status_code == 302
    page = api.client.get(f"/rollouts/{rollout.rollout_id}").get_data(as_text=True)
    assert "Not possible: rollout" in page and "cancelled" in page
    assert api.registry.rollout(rollout.rollout_id).state == "cancelled"  # type: ignore[union-attr]
    assert form_post(api.client, "/rollouts/ro-00000000/pause", {}).status_code == 404
    assert form_post(api.client, f"/rollouts/{rollout.rollout_id}/explode", {}).status_code == 404


def test_rollouts_are_for_admins_and_their_buttons_need_the_csrf_token(api: Api) -> None:
    rollout = _rollout(api)
    api.registry.create_user(username="c1-operator", password="c1-password-long", created_at=timeutil.now_jst(),
                             customer_id="c1")
    _login(api, "c1-operator", "c1-password-long")
    assert api.client.get("/rollouts").status_code == 404
    assert api.client.get(f"/rollouts/{rollout.rollout_id}").status_code == 404
    assert form_post(api.client, f"/rollouts/{rollout.rollout_id}/pause", {}).status_code == 404
    assert 'id="nav-rollouts"' not in api.client.get("/gateways").get_data(as_text=True)
    form_post(api.client, "/logout", {})
    _login(api)
    assert api.client.post(f"/rollouts/{rollout.rollout_id}/pause").status_code == 403
    assert api.registry.rollout(rollout.rollout_id).state == "running"  # type: ignore[union-attr]


def _image(api: Api, version: str = "2.0.0") -> str:
    sha256 = (version.replace(".", "") * 64)[:64].ljust(64, "0")
    api.registry.add_firmware_image({"version": version, "sha256": sha256, "size": 10, "min_version": None,
                                     "key_id": "k1", "signature": "s"}, timeutil.now_jst(), "admin")
    return sha256


def test_a_rollout_created_from_the_form_is_the_apis_rollout_and_a_bad_form_says_which_field(api: Api) -> None:
    sha256 = _image(api)
    for gateway_id in ("gw-a", "gw-c"):
        api.registry.record_gateway_status(gateway_id, "online", timeutil.now_jst())
    _login(api)
    page = api.client.get("/rollouts/new").get_data(as_text=True)
    assert f'value="{sha256}"' in page
    form = {"image": sha256, "target_kind": "gateways", "target_value": "gw-a, gw-c", "groups": "50, 100",
            "success_threshold_pct": "90", "error_threshold_pct": "10", "error_action": "abort",
            "min_group_size": "1", "deadline_s": "600", "health_timeout_s": "120", "window": "after_sunset"}
    for change, field in (({"groups": "50, 10"}, "groups must be cumulative"),
                          ({"success_threshold_pct": "150"}, "success_threshold"),
                          ({"target_value": "gw-nowhere"}, "unknown or decommissioned gateways: gw-nowhere"),
                          ({"image": "f" * 64}, "is unknown: upload it first"),
                          ({"groups": "a lot"}, "groups, thresholds: numbers")):
        response = form_post(api.client, "/rollouts", {**form, **change})
        assert response.status_code == 422 and field in response.get_data(as_text=True), change
    assert api.registry.rollouts() == []
    response = form_post(api.client, "/rollouts", form)
    assert response.status_code == 302
    created = api.registry.rollouts()[0]
    assert response.headers["Location"].endswith(f"/rollouts/{created.rollout_id}")
    assert (created.version, created.target, created.group_sizes, created.success_threshold, created.error_action,
            created.window, created.created_by) == ("2.0.0", {"gateways": ["gw-a", "gw-c"]}, [50.0, 100.0], 0.9,
                                                    "abort", "after_sunset", "user:admin")
    assert [e.action for e in api.registry.list_audit(target=created.rollout_id)[0]] == ["rollout_create"]
    # The same gateways cannot be in two rollouts under way: said on the form (409).
    response = form_post(api.client, "/rollouts", form)
    assert response.status_code == 409 and len(api.registry.rollouts()) == 1
