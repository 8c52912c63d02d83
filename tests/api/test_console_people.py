"""The console's people pages through Flask's test client: who sees which page and form, the forms'
effects in the registry, and a viewer's refusals (the browser test drives the same in Chromium)."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient

from pms_common import timeutil
from tests.api.conftest import ADMIN, Api, form_post


def log_in(client: FlaskClient, username: str, password: str) -> None:
    assert form_post(client, "/login", {"username": username, "password": password}).status_code == 302


def test_admin_pages_make_users_customers_and_notices(api: Api) -> None:
    client = api.client
    log_in(client, "admin", ADMIN)
    for page in ("/users", "/customers", "/keys", "/notices"):
        assert client.get(page).status_code == 200, page
    created = form_post(client, "/users", {"username": "v1", "password": "long password", "role": "viewer",
                                           "customer_id": "c1", "language": "en"})
    assert created.status_code == 302
    assert api.registry.get_user("v1").role == "viewer"  # type: ignore[union-attr]
    bad = form_post(client, "/users", {"username": "v2", "password": "long password", "role": "viewer",
                                       "customer_id": "", "language": "ja"})
    assert bad.status_code == 422 and "viewer" in bad.get_data(as_text=True)
    assert form_post(client, "/users/v1/role", {"role": "operator", "customer_id": "c1"}).status_code == 302
    assert api.registry.get_user("v1").role == "operator"  # type: ignore[union-attr]
    assert form_post(client, "/users/admin/role", {"role": "viewer", "customer_id": "c1"}).status_code == 409
    assert form_post(client, "/customers", {"customer_id": "c3", "name": "三番"}).status_code == 302
    assert form_post(client, "/customers", {"customer_id": "c3", "name": "again"}).status_code == 422
    assert form_post(client, "/customers/c3/rename", {"name": "参番"}).status_code == 302
    assert api.registry.get_customer("c3").name == "参番"  # type: ignore[union-attr]
    start = (timeutil.now_jst() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    notice = form_post(client, "/notices", {"kind": "maintenance", "title": "点検", "body": "", "title_en": "Check",
                                            "body_en": "", "starts_at": start, "ends_at": "", "customer_id": ""})
    assert notice.status_code == 302
    [saved], _ = api.registry.list_notices()
    assert saved.starts_at is not None and saved.starts_at.strftime("%Y-%m-%dT%H:%M") == start
    assert saved.created_by == "user:admin" and saved.title_en == "Check" and saved.body_en is None
    page = client.get("/notices").get_data(as_text=True)
    assert "点検" in page and 'id="notices-scheduled"' in page
    backwards = form_post(client, f"/notices/{saved.notice_id}", {"kind": "info", "title": "点検", "body": "",
                                                                 "starts_at": start, "ends_at": start})
    assert backwards.status_code == 422 and "ends_at" in backwards.get_data(as_text=True)
    metrics = client.get("/metrics").get_data(as_text=True)
    for page in ("users", "customers", "notice"):
        assert f'pms_api_console_people_forms_refused_total{{page="{page}"}}' in metrics
    assert form_post(client, f"/notices/{saved.notice_id}/delete", {}).status_code == 302
    assert api.registry.list_notices()[1] == 0
    assert form_post(client, "/users/v1/delete", {}).status_code == 302
    assert api.registry.get_user("v1") is None


def test_a_viewer_sees_no_forms_but_its_keys_and_is_refused_any_change(api: Api) -> None:
    api.registry.create_user(username="v1", password="long password", created_at=timeutil.now_jst(),
                             customer_id="c1", role="viewer")
    client = api.client
    log_in(client, "v1", "long password")
    assert client.get("/users").status_code == 404 and client.get("/customers").status_code == 404
    page = client.get("/notices").get_data(as_text=True)
    assert "<form method=\"post\" action=\"/notices" not in page and 'id="notice-form"' not in page
    keys = client.get("/keys").get_data(as_text=True)
    assert 'value="write"' not in keys
    made = form_post(client, "/keys", {"label": "mine", "scope": "write", "expires_in_days": "30"})
    assert made.status_code == 201 and 'id="key-secret"' in made.get_data(as_text=True)
    [key] = api.registry.list_api_keys(user_id=api.registry.get_user("v1").user_id)  # type: ignore[union-attr]
    assert key.scope == "read"  # a viewer's key can only read, whatever the form says
    assert "pms_" not in client.get("/keys").get_data(as_text=True)  # the secret is shown once
    assert form_post(client, f"/keys/{key.key_id}/revoke", {}).status_code == 302
    assert api.registry.get_api_key(key.key_id).revoked  # type: ignore[union-attr]
    refused = form_post(client, "/notices", {"kind": "info", "title": "x", "body": ""})
    assert refused.status_code == 403 and api.registry.list_notices()[1] == 0


def test_an_operator_posts_notices_for_its_customer_and_leaves_general_ones_alone(api: Api) -> None:
    api.registry.create_user(username="ops", password="long password", created_at=timeutil.now_jst(),
                             customer_id="c1", role="operator")
    general = api.registry.create_notice(kind="info", title="全員へ", body="", created_at=timeutil.now_jst())
    client = api.client
    log_in(client, "ops", "long password")
    assert client.get("/users").status_code == 404
    page = client.get("/notices").get_data(as_text=True)
    assert 'id="notice-form"' in page and 'id="notice-customer"' not in page  # its customer, no choice
    assert f'/notices/{general.notice_id}/delete' not in page
    posted = form_post(client, "/notices", {"kind": "outage", "title": "c1 停電", "body": "", "customer_id": "c2"})
    assert posted.status_code == 403  # a forged customer is refused, not silently changed
    assert form_post(client, "/notices", {"kind": "outage", "title": "c1 停電", "body": ""}).status_code == 302
    mine = next(n for n in api.registry.list_notices()[0] if n.title == "c1 停電")
    assert mine.customer_id == "c1" and mine.created_by == "user:ops"
    assert client.get(f"/notices/{general.notice_id}").status_code == 403
    assert form_post(client, f"/notices/{general.notice_id}/delete", {}).status_code == 403
    assert client.get(f"/notices/{mine.notice_id}").status_code == 200
    assert api.registry.get_notice(general.notice_id) is not None
