"""The console's pages through the Flask test client: login, both languages, scoping, the vendored charts."""

from __future__ import annotations

import html
import re
from datetime import timedelta

from flask.testing import FlaskClient

from pms_api.csrf import REFUSED
from pms_common import timeutil
from pms_registry.records import AlertRecord
from tests.api.conftest import ADMIN, Api, form_post

PAGES = ["/", "/sales", "/sales/graph", "/gateways", "/gateways/gw-a"]


def _login(api: Api, username: str = "admin", password: str = ADMIN, lang: str = "ja") -> FlaskClient:
    client = api.client
    response = form_post(client, "/login", {"username": username, "password": password, "lang": lang})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def test_pages_need_a_login(api: Api) -> None:
    for page in [*PAGES, f"/plants/{api.codes['a']}"]:
        response = api.client.get(page)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_login_page_in_both_languages(api: Api) -> None:
    assert "パスワード" in api.client.get("/login", headers={"Accept-Language": "ja"}).get_data(as_text=True)
    assert "Password" in api.client.get("/login", headers={"Accept-Language": "en-US,en"}).get_data(as_text=True)


def test_wrong_password_is_refused(api: Api) -> None:
    response = form_post(api.client, "/login", {"username": "admin", "password": "wrong-password"})
    assert response.status_code == 200
    assert "ユーザー名またはパスワードが違います" in response.get_data(as_text=True)
    assert api.client.get("/").status_code == 302


def test_login_goes_back_to_the_page_asked_for_but_never_off_site(api: Api) -> None:
    form = {"username": "admin", "password": ADMIN}
    assert form_post(api.client, "/login?next=/sales", form).headers["Location"] == "/sales"
    assert form_post(api.client, "/login?next=//evil.example/x", form).headers["Location"] == "/"
    assert form_post(api.client, "/login?next=https://evil.example/", form).headers["Location"] == "/"
    assert form_post(api.client, "/login?next=/%5Cevil.example", form).headers["Location"] == "/"
    assert api.client.get("/lang/en?back=//evil.example").headers["Location"] == "/"
    assert api.client.get("/lang/en?back=/sales").headers["Location"] == "/sales"


def test_home_shows_status_notices_events_and_total(api: Api) -> None:
    now = timeutil.now_jst()
    api.registry.record_gateway_status("gw-a", "online", now)
    api.registry.record_gateway_status("gw-c", "offline", now)
    api.registry.open_event(kind="gateway_offline", at=now, message="gw-c offline", gateway_id="gw-c",
                            service_code=api.codes["c"])
    api.registry.create_notice(kind="outage", title="計画停電のお知らせ", body="6/1 10:00-12:00", created_at=now)
    page = _login(api).get("/").get_data(as_text=True)
    # An event logged before params: its Japanese sentence is written from its kind and gateway.
    for text in ["管理状況", 'id="gw-normal">1<', 'id="gw-abnormal">1<', "計画停電のお知らせ",
                 f"Plant c（{api.codes['c']}） のゲートウェイ gw-c との通信が途絶えました", "総売電量", "通信断", "異常発生"]:
        assert text in page, text
    assert "gw-c offline" not in page


def _event_cells(page: str) -> list[tuple[str, str, str]]:
    """(kind, phase, text) of each row of the home screen's event log."""
    rows = re.findall(r'<td class="event-kind">(.*?)</td>\s*<td class="event-phase">(.*?)</td>.*?'
                      r'<td class="event-text">(.*?)</td>', page, re.DOTALL)
    return [(kind, phase, " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())) for kind, phase, text in rows]


def test_home_writes_each_event_in_the_readers_language(api: Api) -> None:
    now = timeutil.now_jst()
    code = api.codes["a"]
    api.registry.open_event(kind="gateway_offline", at=now - timedelta(hours=3), gateway_id="gw-a", service_code=code,
                            message="gateway gw-a is offline (shutdown)", params={"gateway_id": "gw-a", "reason": "shutdown"})
    api.registry.recover_event(kind="gateway_offline", gateway_id="gw-a", at=now - timedelta(minutes=50),
                               params={"duration_s": 7800})
    api.registry.record_info_event(kind="billing_start_decided", at=now - timedelta(hours=2), service_code=code,
                                   message=f"billing start date of {code} decided: 2026-07-03",
                                   params={"day": "2026-07-03"})
    client = _login(api, lang="ja")
    assert _event_cells(client.get("/").get_data(as_text=True)) == [
        ("課金開始日決定", "お知らせ", f"Plant a（{code}）: 課金開始日を 2026年7月3日 に決定しました"),
        ("通信断", "復旧", f"Plant a（{code}） のゲートウェイ gw-a との通信が復旧しました（通信断 2時間10分）"),
    ]
    client.get("/lang/en")
    assert _event_cells(client.get("/").get_data(as_text=True)) == [
        ("Billing start decided", "Info", f"Plant a ({code}): billing starts on 2026-07-03"),
        ("Gateway offline", "Recovered", f"Gateway gw-a at Plant a ({code}) is back online after 2 h 10 min"),
    ]


def test_home_shows_who_acknowledged_an_alert_and_why(api: Api) -> None:
    now = timeutil.now_jst()
    code = api.codes["a"]
    alert = api.registry.save_alert(AlertRecord(
        alert_id=None, kind="no_generation", subject=code, service_code=code, gateway_id=None, rule_id=None,
        severity="warning", state="pending", pending_since=now - timedelta(hours=2)))
    params = {"irradiance_w_m2": 612.4, "threshold_w_m2": 350, "sold_w": 0, "for_s": 3600}
    alert, _ = api.registry.fire_alert(alert, at=now - timedelta(hours=1), message="no generation", params=params)
    assert alert.alert_id is not None
    api.registry.acknowledge_alert(alert.alert_id, by="tanaka", comment="現地確認中", at=now)
    page = _login(api, lang="ja").get("/").get_data(as_text=True)
    assert _event_cells(page) == [
        ("アラート確認", "お知らせ", f"Plant a（{code}） の「発電なし」を tanaka が確認しました（現地確認中）"),
        ("発電なし", "確認", f"Plant a（{code}）: 日射 612 W/m²（しきい値 350 W/m²）があるのに売電が 0 W のまま 1時間 続いています"
                          f" 確認者: tanaka ({now.strftime('%Y-%m-%d %H:%M')}): 現地確認中"),
    ]


def test_every_screen_in_english_and_japanese(api: Api) -> None:
    client = _login(api, lang="en")
    for page, english, japanese in [("/", "Management status", "管理状況"), ("/sales", "Current sold power", "現在の売電電力"),
                                    ("/sales/graph", "Graph", "グラフ表示"),
                                    (f"/plants/{api.codes['a']}", "Energy by hour", "時間別売電量")]:
        assert english in client.get(page).get_data(as_text=True), page
        client.get("/lang/ja")
        assert japanese in client.get(page).get_data(as_text=True), page
        client.get("/lang/en")


def test_sales_list_shows_not_measured_and_sold_power(api: Api) -> None:
    from datetime import timedelta

    from tests.api.conftest import write_power

    write_power(api, "gw-a", -2500, timedelta(seconds=5))
    page = _login(api).get("/sales").get_data(as_text=True)
    assert "2,500 W" in page
    assert "未計測" in page
    assert page.count("<tr data-code=") == 3
    # The list and the graph view are one page: each tab links to its own address.
    assert 'href="/sales" id="tab-list" class="active"' in page and 'href="/sales/graph" id="tab-graph"' in page
    graph = api.client.get("/sales/graph").get_data(as_text=True)
    assert 'id="tab-graph" class="active"' in graph and 'href="/sales" id="nav-sales"' in graph


def test_customer_user_sees_only_its_plants(api: Api) -> None:
    api.registry.create_user(username="c1-user", password="c1-password", customer_id="c1", language="en",
                             created_at=timeutil.now_jst())
    client = _login(api, "c1-user", "c1-password", lang="xx")
    page = client.get("/sales").get_data(as_text=True)
    assert api.codes["a"] in page and api.codes["c"] not in page
    assert "Sales status" in page  # the user's own language when the form names none we know
    assert client.get(f"/plants/{api.codes['c']}").status_code == 404
    assert client.get(f"/plants/{api.codes['a']}").status_code == 200
    listed = client.get("/api/v1/plants").get_json()
    assert [p["service_code"] for p in listed["items"]] == [api.codes["a"], api.codes["b"]]


def test_the_session_reads_the_api_but_never_writes(api: Api) -> None:
    client = _login(api)
    assert client.get("/api/v1/summary").status_code == 200
    assert client.post("/api/v1/customers", json={"customer_id": "c9", "name": "x"}).status_code == 401
    form_post(client, "/logout", {})
    assert client.get("/api/v1/summary").status_code == 401


def test_charts_are_served_locally(api: Api) -> None:
    page = _login(api).get(f"/plants/{api.codes['a']}").get_data(as_text=True)
    assert 'src="/vendor/plotly.min.js"' in page and "cdn" not in page.lower()
    script = api.client.get("/vendor/plotly.min.js")
    assert script.status_code == 200
    assert script.content_type.startswith("text/javascript")
    assert b"plotly" in script.data[:2000].lower()


def test_the_session_key_is_shared_through_the_registry(api: Api) -> None:
    assert api.registry.shared_secret("console-session") == api.registry.shared_secret("console-session")
    assert len(api.registry.shared_secret("console-session")) == 64


def test_a_form_posted_without_its_csrf_token_is_refused(api: Api) -> None:
    client = _login(api)
    before = REFUSED._value.get()
    for data in ({}, {"csrf_token": "forged"}):
        refused = client.post("/logout", data=data)
        assert refused.status_code == 403
        assert "CSRF token" in refused.get_json()["detail"]
        assert client.get("/").status_code == 200  # still logged in: the forged logout did nothing
    login = api.client.post("/login", data={"username": "admin", "password": ADMIN})  # a cross-site login
    assert login.status_code == 403
    assert REFUSED._value.get() - before == 3
    assert "pms_api_csrf_refused_total" in client.get("/metrics").get_data(as_text=True)
    html = client.get("/").get_data(as_text=True)
    with client.session_transaction() as session:
        assert f'name="csrf_token" value="{session["csrf_token"]}"' in html  # the logout form carries it


def test_plant_page_names_its_gateway_and_links_to_the_gateway_page(api: Api) -> None:
    from tests.api.test_api_gateways import HEARTBEAT

    now = timeutil.now_jst()
    api.registry.record_heartbeat("gw-a", HEARTBEAT, now, 60.0)
    api.registry.record_presence("gw-a", "online", now, "connected")
    client = _login(api)
    plant = client.get(f"/plants/{api.codes['a']}").get_data(as_text=True)
    assert 'class="gateway-link" href="/gateways/gw-a">gw-a</a>' in plant
    page = client.get("/gateways/gw-a").get_data(as_text=True)
    for text in ["ゲートウェイ gw-a", "接続中", "1.4.2", "-61 dBm / 180", "1h 00m", "残り 2 日", "+42 s", "接続履歴",
                 "connected", f'href="/plants/{api.codes["a"]}">Plant a</a>', "割当中"]:
        assert text in page, text
    client.get("/lang/en")
    english = client.get("/gateways/gw-a").get_data(as_text=True)
    for text in ["Gateway gw-a", "Online", "Signal (RSSI / LQI)", "2 days pending", "Online/offline history",
                 "Still bound"]:
        assert text in english, text
    listing = client.get("/gateways").get_data(as_text=True)
    assert 'href="/gateways/gw-c"' in listing and "Never seen" in listing


def test_gateway_pages_are_scoped_to_the_customer(api: Api) -> None:
    api.registry.create_user(username="c1-user", password="c1-password", created_at=timeutil.now_jst(),
                             customer_id="c1")
    client = _login(api, "c1-user", "c1-password")
    assert client.get("/gateways/gw-c").status_code == 404
    assert client.get("/gateways/gw-a").status_code == 200
    listing = client.get("/gateways").get_data(as_text=True)
    assert "/gateways/gw-a" in listing and "/gateways/gw-c" not in listing
    assert 'id="gw-unbound"' not in client.get("/").get_data(as_text=True)  # unbound gateways are the admins' to see
