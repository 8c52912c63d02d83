"""Console login throttling: the sans-IO counter, and the login page refusing with 429 once locked."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from pms_api import login_throttle
from pms_api.login_throttle import LoginThrottle, ThrottlePolicy
from tests.api.conftest import ADMIN, Api, form_post

POLICY = ThrottlePolicy(max_failures=3, window_s=60.0, address_factor=2)


def test_a_username_is_locked_after_max_failures_until_they_leave_the_window() -> None:
    throttle = LoginThrottle(POLICY)
    for second in (0.0, 10.0, 20.0):
        assert throttle.retry_after("Admin", "10.0.0.1", second) == 0
        throttle.failed("Admin", "10.0.0.1", second)
    assert throttle.retry_after("admin ", "10.0.0.2", 21.0) == pytest.approx(39.0)  # same account, any address
    assert throttle.retry_after("someone", "10.0.0.2", 21.0) == 0
    assert throttle.retry_after("admin", "10.0.0.2", 60.0) == 0  # the first failure left the window


def test_an_address_trying_many_accounts_is_locked_too() -> None:
    throttle = LoginThrottle(POLICY)
    for index in range(6):  # 3 × 2: never three for one account
        throttle.failed(f"user{index}", "10.0.0.9", float(index))
    assert throttle.retry_after("user99", "10.0.0.9", 6.0) == pytest.approx(54.0)
    assert throttle.retry_after("user99", "10.0.0.8", 6.0) == 0


def test_a_right_password_clears_the_account_but_not_the_address() -> None:
    throttle = LoginThrottle(POLICY)
    for second in (0.0, 1.0):
        throttle.failed("admin", "10.0.0.1", second)
    throttle.succeeded("admin")
    throttle.failed("admin", "10.0.0.1", 2.0)
    assert throttle.retry_after("admin", None, 3.0) == 0  # one failure since the success
    # The address kept all its failures: 3 so far, 3 more reach its limit of 6.
    for index in range(3):
        assert throttle.retry_after(f"other{index}", "10.0.0.1", 3.0) == 0
        throttle.failed(f"other{index}", "10.0.0.1", 3.0)
    assert throttle.retry_after("fresh", "10.0.0.1", 4.0) == pytest.approx(56.0)  # 0 + 60 - 4


def test_memory_is_bounded_whatever_the_usernames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_throttle, "_MAX_KEYS", 100)
    throttle = LoginThrottle(POLICY)
    for index in range(1000):
        throttle.failed(f"random-{index}", None, 0.0)
    assert len(throttle._failures) == 100


def test_the_login_page_stops_an_address_flooding_many_accounts_with_429_and_retry_after(api: Api) -> None:
    """The console's throttle counts addresses (one account's lockout is in the registry: see
    test_api_people); by default 5 × 4 wrong passwords from one address in 5 minutes."""
    client = api.client
    for index in range(20):
        response = form_post(client, "/login", {"username": f"guess{index}", "password": "wrong-password"})
        assert response.status_code == 200
    locked = form_post(client, "/login", {"username": "admin", "password": ADMIN})  # even the right one
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 300
    assert re.search(r"\d+ 分後に再度お試しください", locked.get_data(as_text=True))
    assert client.get("/").status_code == 302  # not logged in
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'pms_api_console_logins_total{outcome="throttled"}' in metrics


def test_the_session_cookie_is_secure_when_asked(make_app: Callable[..., Any]) -> None:
    for secure in (False, True):
        app = make_app(console_secure_cookie=secure)
        response = form_post(app.test_client(), "/login", {"username": "admin", "password": ADMIN})
        assert response.status_code == 302
        cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert ("Secure" in cookie) is secure


def _login(app: Any, username: str, password: str, forwarded_for: str) -> int:
    client = app.test_client()
    client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    status: int = form_post(client, "/login", {"username": username, "password": password}).status_code
    return status


def test_behind_a_proxy_the_throttle_counts_each_client_not_the_proxy(make_app: Callable[..., Any]) -> None:
    """Every request reaches the API from the Ingress's address: counted by it, one attacker would lock
    out every operator. With PMS_API_PROXY_HOPS=1 the client is the address the proxy appended last;
    what the client itself put in front of it (here a new address per try) changes nothing."""
    app = make_app(api_proxy_hops=1)
    for index in range(20):
        assert _login(app, f"guess{index}", "wrong-password", f"198.51.100.{index}, 203.0.113.7") == 200
    assert _login(app, "admin", ADMIN, "203.0.113.7") == 429  # the attacker, even with the right password
    assert _login(app, "admin", ADMIN, "203.0.113.8") == 302  # an operator behind the same Ingress


def test_without_a_proxy_a_forged_forwarded_for_does_not_escape_the_throttle(
        make_app: Callable[..., Any]) -> None:
    app = make_app(api_proxy_hops=0)
    for index in range(20):
        assert _login(app, f"guess{index}", "wrong-password", f"198.51.100.{index}") == 200
    assert _login(app, "admin", ADMIN, "198.51.100.99") == 429  # counted by the real peer address all along
