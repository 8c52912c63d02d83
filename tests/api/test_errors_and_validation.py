"""pms_api.problems: a browser asking for a missing console page gets an HTML page in its language with
a link home (the API keeps problem+json), and every validation message names its field
(`body.x`, `query.y`, `path.z`), a malformed or non-object JSON body said in plain words."""

from __future__ import annotations

import re

import pytest

from pms_api.problems import INVALID_REQUESTS
from tests.api.conftest import ADMIN, PROBLEM, Api

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# Every "location: message" in a detail: the location must start with the part of the request.
FIELD = re.compile(r"(?:^|; )([^:;]*): ")


def _fields(detail: str) -> list[str]:
    return FIELD.findall(detail)


@pytest.mark.parametrize(("lang", "heading"), [("ja", "ページが見つかりません"), ("en", "Page not found")])
def test_a_missing_console_page_is_an_html_page_in_the_browsers_language(api: Api, lang: str, heading: str) -> None:
    response = api.client.get("/no/such/page", headers={"Accept": BROWSER_ACCEPT, "Accept-Language": lang})
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert f'<html lang="{lang}">' in page and heading in page
    assert '<a href="/" id="error-home">' in page
    # werkzeug's English sentence gives way to a hint in the reader's language
    assert "The requested URL was not found" not in page
    assert ("アドレスが正しいか確認" if lang == "ja" else "Check the address") in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_a_console_refusal_is_a_page_too_and_programs_still_get_problem_json(api: Api) -> None:
    # a console POST without its CSRF token, from a browser: a 403 page
    refused = api.client.post("/logout", headers={"Accept": BROWSER_ACCEPT, "Accept-Language": "en"})
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert "You may not do this" in refused.get_data(as_text=True)
    assert "CSRF token" in refused.get_data(as_text=True)
    # the same without a browser's Accept: problem+json
    assert api.client.post("/logout").mimetype == PROBLEM
    # API paths stay problem+json even for a browser
    for path in ("/api/v1/nothing-here", "/api/v1/plants/pss99999999", "/openapi/nothing", "/vendor/nothing.js"):
        answer = api.client.get(path, headers={"Accept": BROWSER_ACCEPT, "Authorization": f"Bearer {ADMIN}"})
        assert answer.status_code == 404 and answer.mimetype == PROBLEM, path


def test_query_fields_are_named_as_query_fields(api: Api) -> None:
    before = INVALID_REQUESTS.labels("query")._value.get()
    for path, field in (("/api/v1/events?limit=abc", "query.limit"), ("/api/v1/plants?limit=-1", "query.limit"),
                        ("/api/v1/events?state=lost", "query.state"),
                        (f"/api/v1/plants/{api.codes['a']}/energy?interval=week", "query.interval")):
        answer = api.get(path)
        assert answer.status_code == 422 and answer.mimetype == PROBLEM, path
        assert _fields(answer.get_json()["detail"]) == [field], answer.get_json()
    assert INVALID_REQUESTS.labels("query")._value.get() == before + 4
    # a rule over the whole query names the query
    crossed = api.get(f"/api/v1/plants/{api.codes['a']}/energy?start=2026-01-05&end=2026-01-01")
    assert crossed.get_json()["detail"] == "query: Value error, end must not be before start"


def test_body_fields_are_named_as_body_fields(api: Api) -> None:
    answer = api.send("POST", "/api/v1/plants", {"customer_id": "c1", "name": "x", "address": "y",
                                                  "phone": "03-0000-0000", "capacity_kw": "lots"})
    assert answer.status_code == 422
    assert _fields(answer.get_json()["detail"]) == ["body.capacity_kw"], answer.get_json()
    notice = api.send("POST", "/api/v1/notices", {"kind": "party", "title": "t", "body": "b"})
    assert _fields(notice.get_json()["detail"]) == ["body.kind"]
    config = api.send("PUT", "/api/v1/gateways/gw-a/config", {"power_interval_s": "often"})
    assert config.status_code == 422
    assert all(name.startswith("body.") for name in _fields(config.get_json()["detail"])), config.get_json()


def test_no_message_begins_with_an_empty_location(api: Api) -> None:
    answers = [
        api.get("/api/v1/events?limit=abc&offset=x"),
        api.send("POST", "/api/v1/notices", {}),
        api.send("POST", "/api/v1/notices", [1, 2]),
        api.send("PUT", "/api/v1/gateways/gw-a/tags", None),
        api.get("/api/v1/plants/not-a-code"),
    ]
    for answer in answers:
        detail = answer.get_json()["detail"]
        assert answer.status_code in (404, 422) and detail, detail
        assert not detail.startswith(":") and ": :" not in detail and "; :" not in detail, detail
        assert "valid dictionary" not in detail, detail


@pytest.mark.parametrize(("raw", "says"), [
    ("{bad", "the request body is not valid JSON (line 1 column 2: Expecting property name enclosed in double quotes)"),
    ('{"kind": "info",\n "title": }', "the request body is not valid JSON (line 2 column 11: Expecting value)"),
    ("[1, 2]", "the request body must be a JSON object, not an array"),
    ('"text"', "the request body must be a JSON object, not a string"),
    ("42", "the request body must be a JSON object, not a number"),
    ("", "the request body is empty: send a JSON object (Content-Type: application/json)"),
])
def test_a_body_that_is_not_a_json_object_says_so(api: Api, raw: str, says: str) -> None:
    for path, method in (("/api/v1/notices", "POST"), ("/api/v1/plants", "POST"), ("/api/v1/channels", "POST")):
        answer = api.client.open(path, method=method, data=raw, headers={
            "Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
        assert answer.status_code == 422 and answer.mimetype == PROBLEM
        assert answer.get_json()["detail"] == says, (path, answer.get_json())


def test_json_sent_as_another_content_type_is_named(api: Api) -> None:
    answer = api.client.post("/api/v1/notices", data='{"kind": "info", "title": "t", "body": "b"}',
                             headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "text/plain"})
    assert answer.status_code == 422
    assert answer.get_json()["detail"] == "the request body is JSON but its Content-Type is not application/json"
