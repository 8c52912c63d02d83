"""Issue 15's people through /api/v1 and the console forms: roles, keys with scope and expiry,
a viewer that changes nothing, an operator that manages no users, the login lockout with its
"until" and an admin's unlock, and notices in ja and en with their schedule."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from pms_common import timeutil
from tests.api.conftest import ADMIN, Api, form_post


def make_user(api: Api, username: str, role: str, customer_id: str | None) -> dict[str, Any]:
    response = api.send("POST", "/api/v1/users", {"username": username, "password": "long password",
                                                  "role": role, "customer_id": customer_id})
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def key_for(api: Api, username: str, scope: str = "write", key: str = ADMIN, **extra: Any) -> Any:
    return api.send("POST", "/api/v1/keys", {"label": f"{username}-{scope}", "username": username, "scope": scope,
                                             **extra}, key)


def test_users_get_roles_that_fit_their_customer_and_admins_change_them(api: Api) -> None:
    viewer = make_user(api, "c1-viewer", "viewer", "c1")
    assert (viewer["role"], viewer["customer_id"], viewer["locked_until"]) == ("viewer", "c1", None)
    refused = api.send("POST", "/api/v1/users", {"username": "v2", "password": "long password", "role": "viewer"})
    assert refused.status_code == 422 and "viewer" in refused.get_json()["detail"]
    changed = api.send("PATCH", "/api/v1/users/c1-viewer", {"role": "operator", "language": "en"})
    assert changed.status_code == 200
    assert (changed.get_json()["role"], changed.get_json()["customer_id"], changed.get_json()["language"]) == \
        ("operator", "c1", "en")
    everyone = api.send("PATCH", "/api/v1/users/c1-viewer", {"customer_id": None})
    assert everyone.status_code == 200 and everyone.get_json()["customer_id"] is None
    assert api.send("PATCH", "/api/v1/users/c1-viewer", {"role": "admin", "customer_id": "c1"}).status_code == 422
    assert api.send("PATCH", "/api/v1/users/nobody", {"role": "admin"}).status_code == 404
    assert api.send("PATCH", "/api/v1/users/c1-viewer", {"password": "short"}).status_code == 422
    admin = make_user(api, "admin2", "admin", None)
    admin_key = key_for(api, "admin2").get_json()["secret"]
    assert admin["role"] == "admin"
    assert api.send("PATCH", "/api/v1/users/admin2", {"role": "operator"}, admin_key).status_code == 409
    assert api.send("DELETE", "/api/v1/users/admin2", None, admin_key).status_code == 409
    assert api.send("DELETE", "/api/v1/users/c1-viewer", None, admin_key).status_code == 204
    assert api.send("PATCH", "/api/v1/customers/c1", {"name": "株式会社ワン"}).get_json() == \
        {"customer_id": "c1", "name": "株式会社ワン"}
    assert api.send("PATCH", "/api/v1/customers/c9", {"name": "x"}).status_code == 404
    assert api.registry.get_customer("c1").name == "株式会社ワン"  # type: ignore[union-attr]


def test_an_operator_cannot_manage_users_or_customers(api: Api) -> None:
    make_user(api, "c1-ops", "operator", "c1")
    secret = key_for(api, "c1-ops").get_json()["secret"]
    for method, path, body in (("GET", "/api/v1/users", None), ("POST", "/api/v1/users",
                               {"username": "x", "password": "long password", "customer_id": "c1"}),
                               ("PATCH", "/api/v1/users/c1-ops", {"role": "admin", "customer_id": None}),
                               ("POST", "/api/v1/users/admin/unlock", None), ("DELETE", "/api/v1/users/admin", None),
                               ("POST", "/api/v1/customers", {"customer_id": "c3", "name": "x"}),
                               ("PATCH", "/api/v1/customers/c1", {"name": "x"})):
        assert api.send(method, path, body, secret).status_code == 403, (method, path)
    assert api.registry.get_user("c1-ops").role == "operator"  # type: ignore[union-attr]
    assert api.registry.get_customer("c3") is None


def test_a_viewers_key_reads_its_customer_and_changes_nothing(api: Api) -> None:
    make_user(api, "c1-viewer", "viewer", "c1")
    refused = key_for(api, "c1-viewer", "write")
    assert refused.status_code == 422 and "scope" in refused.get_json()["detail"]
    made = key_for(api, "c1-viewer", "read")
    assert made.status_code == 201 and made.get_json()["scope"] == "read"
    secret = made.get_json()["secret"]
    plants = api.get("/api/v1/plants", secret).get_json()["items"]
    assert sorted(p["service_code"] for p in plants) == [api.codes["a"], api.codes["b"]]
    notice = {"kind": "info", "title": "x", "body": ""}
    for method, path, body in (("POST", "/api/v1/notices", notice), ("POST", "/api/v1/keys", {"label": "more"}),
                               ("DELETE", f"/api/v1/keys/{made.get_json()['key_id']}", None),
                               ("PATCH", f"/api/v1/plants/{api.codes['a']}", {"name": "renamed"})):
        response = api.send(method, path, body, secret)
        assert response.status_code == 403, (method, path, response.get_data(as_text=True))
    assert api.registry.list_notices()[1] == 0
    assert len(api.registry.list_api_keys(user_id=made.get_json()["user_id"])) == 1


def test_users_make_list_and_revoke_their_own_keys_with_scope_and_expiry(api: Api) -> None:
    ops = make_user(api, "c1-ops", "operator", "c1")
    first = key_for(api, "c1-ops").get_json()["secret"]
    own = api.send("POST", "/api/v1/keys", {"label": "script", "scope": "read"}, first)
    assert own.status_code == 201
    body = own.get_json()
    assert body["user_id"] == ops["user_id"] and body["scope"] == "read" and body["secret"].startswith("pms_")
    created = body["created_at"]
    assert body["expires_at"] > created  # default: 90 days on

    assert datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(created) == timedelta(days=90)
    assert api.send("POST", "/api/v1/keys", {"label": "long", "expires_in_days": 366}, first).status_code == 422
    assert api.send("POST", "/api/v1/keys", {"label": "theirs", "username": "admin"}, first).status_code == 403
    listed = api.get("/api/v1/keys", first).get_json()["items"]
    assert [k["label"] for k in listed] == ["c1-ops-write", "script"]
    assert all("secret" not in k for k in listed)
    assert api.get("/api/v1/plants", body["secret"]).status_code == 200
    other = api.registry.list_api_keys()[0].key_id  # the c1 customer key of no user: not theirs
    assert api.send("DELETE", f"/api/v1/keys/{other}", None, first).status_code == 404
    assert api.send("DELETE", f"/api/v1/keys/{body['key_id']}", None, first).status_code == 204
    assert api.get("/api/v1/plants", body["secret"]).status_code == 401
    revoked = next(k for k in api.get("/api/v1/keys", first).get_json()["items"] if k["key_id"] == body["key_id"])
    assert revoked["revoked"] is True
    used = next(k for k in api.get("/api/v1/keys", first).get_json()["items"] if k["label"] == "c1-ops-write")
    assert used["last_used_at"] is not None


def test_an_expired_key_and_a_deleted_users_key_authenticate_nothing(api: Api) -> None:
    ops = make_user(api, "c1-ops", "operator", "c1")
    long_ago = timeutil.now_jst() - timedelta(days=100)
    old = api.registry.create_api_key(label="old", created_at=long_ago, user_id=ops["user_id"],
                                      expires_at=long_ago + timedelta(days=90))
    assert api.get("/api/v1/plants", old).status_code == 401
    current = key_for(api, "c1-ops").get_json()["secret"]
    assert api.get("/api/v1/plants", current).status_code == 200
    assert api.send("DELETE", "/api/v1/users/c1-ops").status_code == 204
    assert api.get("/api/v1/plants", current).status_code == 401


def test_the_login_lockout_says_until_when_and_an_admin_unlocks_it(api: Api) -> None:
    make_user(api, "c1-ops", "operator", "c1")
    client = api.client
    for _ in range(4):
        assert form_post(client, "/login", {"username": "c1-ops", "password": "wrong-password"}).status_code == 200
    fifth = form_post(client, "/login", {"username": "c1-ops", "password": "wrong-password"})
    assert fifth.status_code == 429
    user = api.registry.get_user("c1-ops")
    assert user is not None and user.locked_until is not None
    until = user.locked_until.astimezone(timeutil.JST).strftime("%H:%M")
    assert f"{until} までログインできません" in fifth.get_data(as_text=True)
    locked = form_post(client, "/login", {"username": "c1-ops", "password": "long password", "lang": "en"})
    assert locked.status_code == 429 and 0 < int(locked.headers["Retry-After"]) <= 300
    listed = next(u for u in api.get("/api/v1/users").get_json()["items"] if u["username"] == "c1-ops")
    assert listed["locked_until"] is not None
    unlocked = api.send("POST", "/api/v1/users/c1-ops/unlock")
    assert unlocked.status_code == 200 and unlocked.get_json()["locked_until"] is None
    assert api.send("POST", "/api/v1/users/nobody/unlock").status_code == 404
    assert form_post(client, "/login", {"username": "c1-ops", "password": "long password"}).status_code == 302
    metrics = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'pms_api_console_logins_total\{outcome="locked"\} [1-9]', metrics)


def test_notices_in_ja_and_en_on_their_schedule(api: Api) -> None:
    now = timeutil.now_jst()
    later = {"kind": "maintenance", "title": "夜間メンテナンス", "body": "0時から2時まで", "title_en": "Night maintenance",
             "body_en": "From 0:00 to 2:00", "starts_at": (now + timedelta(hours=1)).isoformat(),
             "ends_at": (now + timedelta(hours=3)).isoformat()}
    scheduled = api.send("POST", "/api/v1/notices", later)
    assert scheduled.status_code == 201 and scheduled.get_json()["created_by"].startswith("key:admin")
    ja_only = api.send("POST", "/api/v1/notices", {"kind": "firmware", "title": "更新のお知らせ", "body": "本文"})
    assert ja_only.status_code == 201

    def listed(state: str, lang: str) -> list[tuple[str, str, str]]:
        items = api.get(f"/api/v1/notices?state={state}&lang={lang}", api.keys["c1"]).get_json()["items"]
        return [(n["title"], n["body"], n["language"]) for n in items]

    assert listed("current", "en") == [("更新のお知らせ", "本文", "ja")]  # no English text: Japanese
    assert listed("scheduled", "en") == [("Night maintenance", "From 0:00 to 2:00", "en")]
    assert listed("scheduled", "ja") == [("夜間メンテナンス", "0時から2時まで", "ja")]
    assert listed("past", "ja") == []
    notice_id = scheduled.get_json()["notice_id"]
    moved = api.send("PATCH", f"/api/v1/notices/{notice_id}", {"starts_at": (now - timedelta(hours=1)).isoformat()})
    assert moved.status_code == 200 and moved.get_json()["title_en"] == "Night maintenance"
    assert [t for t, _, _ in listed("current", "en")] == ["更新のお知らせ", "Night maintenance"]
    ended = api.send("PATCH", f"/api/v1/notices/{notice_id}", {"ends_at": (now - timedelta(minutes=1)).isoformat()})
    assert ended.status_code == 200
    assert listed("past", "en") == [("Night maintenance", "From 0:00 to 2:00", "en")]
    bad = api.send("PATCH", f"/api/v1/notices/{notice_id}", {"ends_at": (now - timedelta(hours=2)).isoformat()})
    assert bad.status_code == 422
    nulled = api.send("PATCH", f"/api/v1/notices/{notice_id}", {"title": None})
    assert nulled.status_code == 422 and "title" in nulled.get_json()["detail"]
    assert api.send("DELETE", f"/api/v1/notices/{notice_id}", None, api.keys["c1"]).status_code == 403
    assert api.send("DELETE", f"/api/v1/notices/{notice_id}").status_code == 204
    assert api.send("PATCH", f"/api/v1/notices/{notice_id}", {"title": "x"}).status_code == 404


def test_an_operator_changes_its_customers_notices_only(api: Api) -> None:
    own = api.send("POST", "/api/v1/notices", {"kind": "outage", "title": "c1", "body": ""}, api.keys["c1"])
    theirs = api.send("POST", "/api/v1/notices", {"kind": "outage", "title": "c2", "body": ""}, api.keys["c2"])
    own_id, their_id = own.get_json()["notice_id"], theirs.get_json()["notice_id"]
    assert api.send("PATCH", f"/api/v1/notices/{own_id}", {"title": "c1 changed"}, api.keys["c1"]).status_code == 200
    assert api.send("PATCH", f"/api/v1/notices/{their_id}", {"title": "x"}, api.keys["c1"]).status_code == 404
    assert api.send("PATCH", f"/api/v1/notices/{own_id}", {"customer_id": "c2"}, api.keys["c1"]).status_code == 403
    assert [n["title"] for n in api.get("/api/v1/notices", api.keys["c2"]).get_json()["items"]] == ["c2"]
