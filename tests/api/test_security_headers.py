"""Issue 15's safety checks, walked over the app's own route map: every console page and a sample of
API answers (error answers and pages included) carry a CSP whose script-src allows no inline script,
frame-ancestors and nosniff; no template (nor any rendered page) holds an inline script with code or
an on*= handler attribute; and every console POST route refuses a form sent without its CSRF token."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from pms_api import app as app_module
from pms_api.csrf import REFUSED
from tests.api.conftest import ADMIN, Api, form_post

TEMPLATES = Path(app_module.__file__).parent / "templates"
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)
JS_URL = re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.IGNORECASE)
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _directives(policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            found[words[0].lower()] = words[1:]
    return found


def _check_headers(response: Any, what: str) -> None:
    policy = _directives(response.headers.get("Content-Security-Policy", ""))
    script_src = policy.get("script-src", policy.get("default-src"))
    assert script_src, f"{what}: no script-src"
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src, (what, script_src)
    assert policy.get("frame-ancestors") == ["'none'"], (what, policy)
    assert response.headers.get("X-Content-Type-Options") == "nosniff", what


def _inline_code(page: str) -> list[str]:
    """Inline scripts with code (a JSON data block is data), handler attributes and javascript: URLs."""
    bad = [body.strip()[:60] for attrs, body in SCRIPT.findall(page)
           if body.strip() and "application/json" not in attrs.lower()]
    bad += [m.group(0)[:60] for m in HANDLER.finditer(page)]
    bad += [m.group(0) for m in JS_URL.finditer(page)]
    return bad


def _seeded_args(api: Api) -> dict[str, str]:
    """A value for each URL argument of the console's routes (pages of things that do not exist are
    404 pages, which must carry the headers too)."""
    return {"service_code": api.codes["a"], "gateway_id": "gw-a", "code": "en", "rollout_id": "r-none",
            "alert_id": "1", "rule_id": "1", "channel_id": "1", "delivery_id": "1", "event_id": "1",
            "action": "pause", "view": "list", "notice_id": "1", "tariff_id": "1", "username": "nobody",
            "key_id": "0000000000000000", "customer_id": "C-none", "token": "0" * 20}


def _path(rule: Any, args: dict[str, str]) -> str | None:
    path = rule.rule
    for name in rule.arguments:
        if name not in args:
            return None
        path = re.sub(rf"<(?:[a-z]+:)?{name}>", args[name], path)
    return path


def _console_rules(app: Flask, method: str) -> list[Any]:
    machine = ("/api/", "/openapi", "/static", "/vendor", "/healthz", "/metrics")
    return [rule for rule in app.url_map.iter_rules()
            if method in (rule.methods or set()) and not rule.rule.startswith(machine)]


def _login(api: Api) -> None:
    assert form_post(api.client, "/login", {"username": "admin", "password": ADMIN}).status_code == 302


def _app(api: Api) -> Flask:
    app: Flask = api.client.application
    return app


def test_every_console_page_sends_the_security_headers_and_runs_no_inline_script(api: Api) -> None:
    _login(api)
    args = _seeded_args(api)
    walked = []
    for rule in _console_rules(_app(api), "GET"):
        path = _path(rule, args)
        assert path is not None, f"no argument value for {rule.rule}: add one to _seeded_args"
        if rule.endpoint == "console.switch_language":
            continue  # walked last: it is a redirect that changes the session's language
        response = api.client.get(path, headers=BROWSER)
        assert response.status_code < 500, (path, response.status_code)
        _check_headers(response, path)
        if response.mimetype == "text/html":
            assert not _inline_code(response.get_data(as_text=True)), path
        walked.append((path, response.status_code))
    assert len(walked) >= 15 and ("/events", 200) in walked and ("/", 200) in walked, walked
    _check_headers(api.client.get("/lang/en?back=/"), "/lang/en")
    # logged out: the redirect to the login page, and the login page itself
    api.client.post("/logout", data={"csrf_token": _token(api)})
    for path in ("/", "/login", "/events"):
        _check_headers(api.client.get(path, headers=BROWSER), path)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/v1/plants", 200), ("GET", "/api/v1/events?format=csv", 200), ("GET", "/api/v1/summary", 200),
    ("GET", "/api/v1/plants/{a}/energy?format=csv&headers=ja", 200), ("GET", "/api/v1/plants/pss99999999", 404),
    ("GET", "/api/v1/events?limit=0", 422), ("POST", "/api/v1/notices", 422), ("GET", "/api/v1/nothing", 404),
    ("DELETE", "/api/v1/summary", 405), ("GET", "/healthz", 200), ("GET", "/metrics", 200),
    ("GET", "/openapi.json", 200), ("GET", "/openapi/swagger", 200), ("GET", "/api/docs", 302),
    ("GET", "/vendor/plotly.min.js", 200), ("GET", "/static/console.css", 200), ("GET", "/static/events.js", 404),
    ("GET", "/no/such/page", 404),
])
def test_api_answers_and_error_answers_send_the_security_headers(api: Api, method: str, path: str,
                                                                 status: int) -> None:
    path = path.replace("{a}", api.codes["a"])
    for headers in ({"Authorization": f"Bearer {ADMIN}"}, {"Authorization": f"Bearer {ADMIN}", **BROWSER}):
        response = api.client.open(path, method=method, headers=headers, data="{" if method == "POST" else None,
                                   content_type="application/json" if method == "POST" else None)
        assert response.status_code == status, (path, response.status_code)
        _check_headers(response, path)
    unauthenticated = api.client.get("/api/v1/plants")
    assert unauthenticated.status_code == 401
    _check_headers(unauthenticated, "401")


def test_no_template_holds_inline_script_or_handler_attributes() -> None:
    templates = sorted(TEMPLATES.glob("*.html"))
    assert len(templates) >= 20
    for template in templates:
        assert not _inline_code(template.read_text(encoding="utf-8")), template.name
    # the checker itself finds what it looks for
    assert _inline_code('<script>alert(1)</script><a onclick="x()">') and _inline_code('<a href="javascript:x()">')
    assert not _inline_code('<script id="c" type="application/json">{"a": 1}</script><script src="/s.js"></script>')


def _token(api: Api) -> str:
    api.client.get("/login")
    with api.client.session_transaction() as session:
        token: str = session["csrf_token"]
    return token


def test_every_console_post_route_refuses_a_form_without_its_csrf_token(api: Api) -> None:
    _login(api)
    args = _seeded_args(api)
    routes = _console_rules(_app(api), "POST")
    assert len(routes) >= 15 and {"console.acknowledge_event", "console.logout", "console.login"} <= {
        rule.endpoint for rule in routes}
    before = REFUSED._value.get()
    for rule in routes:
        path = _path(rule, args)
        assert path is not None, f"no argument value for {rule.rule}: add one to _seeded_args"
        for data in ({}, {"csrf_token": "forged-" + "x" * 40}):
            refused = api.client.post(path, data={**data, "comment": "x"})
            assert refused.status_code == 403, (path, data, refused.status_code)
            assert "CSRF token" in refused.get_json()["detail"], path
            _check_headers(refused, path)
    assert REFUSED._value.get() == before + 2 * len(routes)
    # the session is untouched by the refusals: still logged in, and the right token works
    assert api.client.get("/events").status_code == 200
    assert api.client.post("/logout", data={"csrf_token": _token(api)}).status_code == 302


@pytest.mark.parametrize(("hops", "proto", "hsts"), [(0, None, False), (0, "https", False), (1, "http", False),
                                                     (1, "https", True)])
def test_strict_transport_security_only_over_https_as_the_proxy_reports_it(
        make_app: Callable[..., Any], hops: int, proto: str | None, hsts: bool) -> None:
    """Behind a TLS-terminating Ingress (PMS_API_PROXY_HOPS=1) the API sees plain HTTP; the proxy's
    X-Forwarded-Proto makes the request HTTPS and its answers carry HSTS. Without a proxy configured
    the header is a client's claim and is ignored."""
    client = make_app(api_proxy_hops=hops).test_client()
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    for path in ("/login", "/healthz", "/api/v1/plants"):
        response = client.get(path, headers=headers)
        assert ("Strict-Transport-Security" in response.headers) is hsts, (path, response.headers)
        if hsts:
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
