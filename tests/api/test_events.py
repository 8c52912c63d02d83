"""GET /api/v1/events filters (plant, kind, state, time, customer scope), its CSV (Japanese or English
headers, the plant's name, JST times), and the console's events page: filters, paging, acknowledge
with a comment, the CSV link that keeps the filters."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from pms_api.console_events import EVENTS_PER_PAGE
from pms_common import timeutil
from tests.api.conftest import Api, form_post
from tests.event_seeding import fire_no_generation

HOUR = timedelta(hours=1)


@pytest.fixture
def logged(api: Api) -> Api:
    """Six events over three plants of two customers, the newest first:
    t-1h no_generation firing at a (open, alert); t-2h no_generation firing at b, acknowledged;
    t-3h gateway_offline at c (open); t-4h gateway_offline at a, recovered at t-3h30;
    t-26h billing_start_decided at a (info); plus the acknowledgement's own info event at t-90min."""
    now = timeutil.now_jst()
    r, codes = api.registry, api.codes
    r.record_info_event(kind="billing_start_decided", at=now - 26 * HOUR, service_code=codes["a"], gateway_id="gw-a",
                        message="billing starts", params={"day": "2026-01-01"})
    r.open_event(kind="gateway_offline", at=now - 4 * HOUR, message="a down", gateway_id="gw-a",
                 service_code=codes["a"], params={"gateway_id": "gw-a", "reason": "lost"})
    r.recover_event(kind="gateway_offline", gateway_id="gw-a", at=now - 3.5 * HOUR, params={"duration_s": 1800})
    r.open_event(kind="gateway_offline", at=now - 3 * HOUR, message="c down", gateway_id="gw-c",
                 service_code=codes["c"], params={"gateway_id": "gw-c", "reason": "lost"})
    seen = fire_no_generation(r, codes["b"], "gw-b", now - 2 * HOUR)
    assert seen.alert_id is not None
    r.acknowledge_alert(seen.alert_id, by="ops", comment="site visit booked", at=now - 1.5 * HOUR)
    fire_no_generation(r, codes["a"], "gw-a", now - HOUR)
    return api


def _kinds(api: Api, query: str, key: str | None = None) -> list[tuple[str, str]]:
    body = api.get(f"/api/v1/events?{query}", *([key] if key else [])).get_json()
    assert body["total"] == len(body["items"]), body
    return [(e["kind"], e["service_code"]) for e in body["items"]]


def test_events_filter_by_plant_kind_state_and_time(logged: Api) -> None:
    a, b, c = (logged.codes[x] for x in "abc")
    assert len(_kinds(logged, "")) == 6
    assert _kinds(logged, f"service_code={a}") == [("no_generation", a), ("gateway_offline", a),
                                                   ("billing_start_decided", a)]
    assert _kinds(logged, "kind=gateway_offline") == [("gateway_offline", c), ("gateway_offline", a)]
    assert _kinds(logged, "state=open") == [("no_generation", a), ("gateway_offline", c)]
    assert _kinds(logged, "state=acknowledged") == [("no_generation", b)]
    assert _kinds(logged, "state=recovered") == [("gateway_offline", a)]
    assert _kinds(logged, "state=info") == [("alert_acknowledged", b), ("billing_start_decided", a)]
    now = timeutil.now_jst()
    since = (now - 3.2 * HOUR).isoformat()
    until = (now - 1.2 * HOUR).isoformat()
    window = _kinds(logged, f"since={since.replace('+', '%2B')}&until={until.replace('+', '%2B')}")
    assert window == [("alert_acknowledged", b), ("no_generation", b), ("gateway_offline", c)]
    # a time without an offset is Japan time
    naive = (now - 3.2 * HOUR).strftime("%Y-%m-%dT%H:%M:%S")
    assert _kinds(logged, f"since={naive}&kind=gateway_offline") == [("gateway_offline", c)]
    assert _kinds(logged, f"service_code={a}&state=open&kind=no_generation") == [("no_generation", a)]


def test_events_stay_in_the_customers_scope(logged: Api) -> None:
    a, b, c = (logged.codes[x] for x in "abc")
    mine = _kinds(logged, "", logged.keys["c1"])
    assert {code for _, code in mine} == {a, b} and len(mine) == 5
    assert _kinds(logged, f"service_code={c}", logged.keys["c1"]) == []
    assert _kinds(logged, "kind=gateway_offline", logged.keys["c2"]) == [("gateway_offline", c)]


def test_event_filters_are_validated_by_name(logged: Api) -> None:
    for query, field in (("service_code=abc", "query.service_code"), ("kind=Bad-Kind", "query.kind"),
                         ("state=closed", "query.state"), ("since=yesterday", "query.since"),
                         ("since=2026-06-02T00:00:00&until=2026-06-01T00:00:00", "query")):
        answer = logged.get(f"/api/v1/events?{query}")
        assert answer.status_code == 422 and answer.get_json()["detail"].startswith(field + ":"), answer.get_json()


def test_events_csv_in_japanese_and_shift_jis_keeps_the_filters(logged: Api) -> None:
    a = logged.codes["a"]
    logged.registry.update_plant(a, name="髙橋㈱第一発電所")
    answer = logged.get(f"/api/v1/events?service_code={a}&format=csv&headers=ja&lang=ja&encoding=shift_jis")
    assert answer.status_code == 200 and answer.content_type == "text/csv; charset=shift_jis"
    assert re.match(r'attachment; filename="events-\d{8}-\d{4}\.csv"', answer.headers["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(answer.data.decode("cp932"), newline="")))
    assert list(rows[0])[:6] == ["イベントID", "発生日時", "復旧日時", "状態", "種類コード", "種類"]
    assert [(row["種類コード"], row["サービスコード"], row["発電所名"]) for row in rows] == [
        ("no_generation", a, "髙橋㈱第一発電所"), ("gateway_offline", a, "髙橋㈱第一発電所"),
        ("billing_start_decided", a, "髙橋㈱第一発電所")]
    assert [row["状態"] for row in rows] == ["異常発生", "復旧", "お知らせ"]
    opened = timeutil.now_jst() - HOUR
    assert rows[0]["発生日時"][:13] == opened.strftime("%Y-%m-%d %H")  # JST wall clock, no offset
    assert "髙橋㈱第一発電所" in rows[0]["内容"]


def test_events_csv_in_english_is_every_match_not_one_page(logged: Api) -> None:
    answer = logged.get("/api/v1/events?format=csv&limit=1&state=info")
    assert answer.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(answer.data.decode("utf-8-sig"), newline="")))
    assert [row["kind"] for row in rows] == ["alert_acknowledged", "billing_start_decided"]
    assert (rows[0]["acknowledged_by"], rows[0]["ack_comment"], rows[0]["phase"]) == ("ops", "site visit booked",
                                                                                       "info")


# ---- the console page ------------------------------------------------------------------------------------------
def _login(api: Api, lang: str = "en") -> FlaskClient:
    response = form_post(api.client, "/login", {"username": "admin", "password": "admin-secret", "lang": lang})
    assert response.status_code == 302
    return api.client


def _rows(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr id="event-(\d+)" data-event="\d+" data-phase="(\w+)"', page)


def test_events_page_filters_and_links_a_csv_with_the_same_filters(logged: Api) -> None:
    client = _login(logged)
    a = logged.codes["a"]
    page = client.get(f"/events?service_code={a}&state=open").get_data(as_text=True)
    assert [phase for _, phase in _rows(page)] == ["raised"]
    assert "Plant a" in page and 'id="event-total">1<' in page
    csv_link = re.search(r'href="([^"]+)" id="events-csv"', page)
    assert csv_link is not None
    link = urlsplit(csv_link.group(1).replace("&amp;", "&"))
    assert link.path == "/api/v1/events"
    assert {k: v[0] for k, v in parse_qs(link.query).items()} == {
        "service_code": a, "state": "open", "format": "csv", "lang": "en", "headers": "en"}
    # the link works with the login session and gives what the page shows
    exported = client.get(csv_link.group(1).replace("&amp;", "&"))
    rows = list(csv.DictReader(io.StringIO(exported.data.decode("utf-8-sig"), newline="")))
    assert [(r["kind"], r["service_code"]) for r in rows] == [("no_generation", a)]
    # JST days, both included
    today = timeutil.now_jst().date()
    days = client.get(f"/events?from={today - timedelta(days=1)}&until={today - timedelta(days=1)}").get_data(
        as_text=True)
    assert len(_rows(days)) == (1 if (timeutil.now_jst() - 26 * HOUR).date() == today - timedelta(days=1) else 0)
    assert len(_rows(client.get(f"/events?from={today}&until={today}").get_data(as_text=True))) == 5


def test_events_page_in_japanese_says_a_bad_filter_by_name(logged: Api) -> None:
    client = _login(logged, "ja")
    page = client.get("/events?from=2026-13-01")
    assert page.status_code == 422
    text = page.get_data(as_text=True)
    assert "絞り込み条件に誤りがあります: from: not a date" in text
    assert len(_rows(text)) == 6  # the unfiltered log is still shown
    bad_code = client.get("/events?service_code=nope")
    assert bad_code.status_code == 422 and "service_code: String should match pattern" in bad_code.get_data(True)


def test_events_page_pages_through_the_log(logged: Api) -> None:
    now = timeutil.now_jst()
    for i in range(EVENTS_PER_PAGE + 5):
        logged.registry.record_info_event(kind="billing_start_decided", at=now - timedelta(days=2, minutes=i),
                                          service_code=logged.codes["b"], message=f"old {i}")
    client = _login(logged)
    first = client.get("/events").get_data(as_text=True)
    assert len(_rows(first)) == EVENTS_PER_PAGE and 'id="page-prev"' not in first
    after = re.search(r'id="page-next" href="([^"]+)"', first)
    assert after is not None
    second = client.get(after.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert len(_rows(second)) == 6 + EVENTS_PER_PAGE + 5 - EVENTS_PER_PAGE
    assert not set(_rows(first)) & set(_rows(second)) and 'id="page-next"' not in second


def test_acknowledge_an_event_with_a_comment_from_the_events_page(logged: Api) -> None:
    client = _login(logged)
    a = logged.codes["a"]
    page = client.get(f"/events?service_code={a}").get_data(as_text=True)
    [(event_id, _)] = [row for row in _rows(page) if row[1] == "raised"]
    action = re.search(rf'action="(/events/{event_id}/ack[^"]*)"', page)
    assert action is not None
    done = form_post(client, action.group(1).replace("&amp;", "&"), {"comment": "panel cleaning today"})
    assert done.status_code == 302 and done.headers["Location"] == f"/events?service_code={a}#event-{event_id}"
    event = logged.registry.get_event(int(event_id))
    assert event is not None and (event.acknowledged_by, event.ack_comment) == ("admin", "panel cleaning today")
    after = client.get(done.headers["Location"]).get_data(as_text=True)
    assert f"Event {event_id} acknowledged" in after and "panel cleaning today" in after
    assert (event_id, "acknowledged") in _rows(after)
    # a recovered event cannot be acknowledged; another customer's event does not exist for c1's users
    recovered = next(e for e in logged.registry.list_events(state="recovered"))
    form_post(client, f"/events/{recovered.event_id}/ack", {"comment": "x"})
    assert "cannot be acknowledged" in client.get("/events").get_data(as_text=True)


def test_a_viewer_sees_events_but_cannot_acknowledge(logged: Api) -> None:
    logged.registry.create_user(username="watcher", password="watcher-password-1", created_at=timeutil.now_jst(),
                                customer_id="c1", role="viewer")
    client = logged.client
    assert form_post(client, "/login", {"username": "watcher", "password": "watcher-password-1"}).status_code == 302
    page = client.get("/events").get_data(as_text=True)
    assert len(_rows(page)) == 5 and "ack-form" not in page
    event = next(e for e in logged.registry.list_events(state="open") if e.alert_id is not None)
    assert form_post(client, f"/events/{event.event_id}/ack", {"comment": "x"}).status_code == 403
    assert logged.registry.get_event(event.event_id).acknowledged_at is None  # type: ignore[union-attr]


def test_another_customers_event_is_no_event(logged: Api) -> None:
    logged.registry.create_user(username="op1", password="operator-password-1", created_at=timeutil.now_jst(),
                                customer_id="c1", role="operator")
    client = logged.client
    assert form_post(client, "/login", {"username": "op1", "password": "operator-password-1"}).status_code == 302
    theirs = next(e for e in logged.registry.list_events() if e.service_code == logged.codes["c"])
    assert form_post(client, f"/events/{theirs.event_id}/ack", {"comment": "x"}).status_code == 404
