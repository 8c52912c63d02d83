"""Customers, console users and API keys (admin only) through the Flask test client."""

from __future__ import annotations

from tests.api.conftest import ADMIN, PROBLEM, Api


def test_customers(api: Api) -> None:
    assert [c["customer_id"] for c in api.get("/api/v1/customers").get_json()["items"]] == ["c1", "c2"]
    assert api.send("POST", "/api/v1/customers", {"customer_id": "c3", "name": "三番"}).status_code == 201
    assert api.send("POST", "/api/v1/customers", {"customer_id": "c3", "name": "again"}).status_code == 409
    assert api.get("/api/v1/customers").get_json()["total"] == 3
    assert api.get("/api/v1/customers", api.keys["c1"]).status_code == 403
    assert api.send("POST", "/api/v1/customers", {"customer_id": "c4", "name": "x"}, api.keys["c1"]).status_code == 403
    assert api.send("POST", "/api/v1/customers", {"customer_id": "bad id", "name": "x"}).status_code == 422



def test_admin_issues_and_revokes_a_customer_key(api: Api) -> None:
    issued = api.send("POST", "/api/v1/keys", {"label": "c2 billing system", "customer_id": "c2"})
    assert issued.status_code == 201
    key = issued.get_json()
    assert key["secret"].startswith("pms_") and not key["revoked"]
    listed = api.get("/api/v1/plants", key["secret"]).get_json()
    assert [p["service_code"] for p in listed["items"]] == [api.codes["c"]]
    records = api.get("/api/v1/keys").get_json()["items"]
    assert all("secret" not in r for r in records)
    assert key["key_id"] in [r["key_id"] for r in records]
    assert api.send("DELETE", f"/api/v1/keys/{key['key_id']}").status_code == 204
    assert api.get("/api/v1/plants", key["secret"]).status_code == 401
    assert api.send("DELETE", "/api/v1/keys/0123456789abcdef").status_code == 404


def test_an_admin_cannot_revoke_its_own_key(api: Api) -> None:
    own = api.registry.key_id_of(ADMIN)
    response = api.send("DELETE", f"/api/v1/keys/{own}")
    assert response.status_code == 409
    assert api.get("/api/v1/plants").status_code == 200


def test_keys_for_unknown_customers_and_by_customers_are_refused(api: Api) -> None:
    assert api.send("POST", "/api/v1/keys", {"label": "x", "customer_id": "nobody"}).status_code == 422
    assert api.send("POST", "/api/v1/keys", {"label": "x"}, api.keys["c1"]).status_code == 403
    # A customer's key of no user lists only its user's keys: none, never the others'.
    listed = api.get("/api/v1/keys", api.keys["c1"])
    assert listed.status_code == 200 and listed.get_json()["items"] == []


def test_admin_manages_console_users(api: Api) -> None:
    created = api.send("POST", "/api/v1/users", {"username": "c1-ops", "password": "long password",
                                                 "customer_id": "c1", "language": "en"})
    assert created.status_code == 201
    assert created.get_json() == {"user_id": created.get_json()["user_id"], "username": "c1-ops",
                                  "customer_id": "c1", "language": "en", "role": "operator", "locked_until": None}
    assert api.send("POST", "/api/v1/users", {"username": "c1-ops", "password": "other password"}).status_code == 409
    assert api.registry.verify_user("c1-ops", "long password") is not None
    assert [u["username"] for u in api.get("/api/v1/users").get_json()["items"]] == ["admin", "c1-ops"]
    assert api.send("DELETE", "/api/v1/users/c1-ops").status_code == 204
    assert api.send("DELETE", "/api/v1/users/c1-ops").status_code == 404
    assert api.registry.verify_user("c1-ops", "long password") is None


def test_bad_users_are_refused(api: Api) -> None:
    for body in [{"username": "x", "password": "short"}, {"username": "bad name", "password": "long password"},
                 {"username": "x", "password": "long password", "customer_id": "nobody"},
                 {"username": "x", "password": "long password", "language": "fr"}]:
        response = api.send("POST", "/api/v1/users", body)
        assert response.status_code == 422, body
        assert response.content_type == PROBLEM
    assert api.send("POST", "/api/v1/users", {"username": "x", "password": "long password"},
                    api.keys["c1"]).status_code == 403


