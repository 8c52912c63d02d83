"""Issue 15's people flows in Debian's Chromium, in Japanese and in English: a scheduled notice (not on
the home screen before its start; on it and in GET /api/v1/notices during its window, in the page's
language), a viewer created by the admin that can edit nothing (no forms; a forged POST with a
valid CSRF token is a 403), an API key shown once and revoked, and a user locked out by wrong
passwords ("locked until HH:MM") unlocked by the admin.

The clock the console reads (timeutil.now_jst) is moved by the test, so the notice's window, just
past a JST midnight, arrives without waiting. Pictures of the people pages in Japanese go to
$PMS_SCREENSHOT_DIR (default var/screenshots/console-ja), named people-*.png."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.alert import Alert
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_registry import Registry
from tests.browser.serving import log_in_as_admin, served

pytestmark = pytest.mark.integration

ADMIN_KEY = "people-browser-admin-key"
REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 12, 3, 23, 50, tzinfo=timeutil.JST)  # ten minutes before a JST midnight
WORDS = {
    "ja": {"title": "夜間メンテナンス", "body": "0時から30分間、データが遅れます", "kind": "メンテナンス"},
    "en": {"title": "Night maintenance", "body": "Data is late for 30 minutes from 0:00", "kind": "Maintenance"},
}


@dataclass
class Clock:
    """The console's "now": START plus what the test moves it by."""

    offset: timedelta = field(default_factory=timedelta)

    def now(self) -> datetime:
        return START + self.offset


@dataclass
class Console:
    url: str
    registry: Registry
    clock: Clock


@pytest.fixture
def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_CONSOLE_REFRESH_S"):
        monkeypatch.delenv(name, raising=False)
    clock = Clock()
    monkeypatch.setattr(timeutil, "now_jst", clock.now)
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN_KEY))
    registry: Registry = app.config["registry"]
    registry.ensure_customer("C00001", "デモ電力")
    registry.create_plant(customer_id="C00001", name="太陽光1号", address="茨城県つくば市", phone="029-000-0000",
                          created_at=START, latitude=36.08, longitude=140.11, capacity_kw=49.5)
    with served(app) as url:
        yield Console(url, registry, clock)
    app.config["store"].close()
    registry.close()


def wait_for(browser: Any, element_id: str) -> Any:
    return WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, element_id)))


def fill(browser: Any, element_id: str, value: str) -> None:
    """Set an input's value as the user would (datetime-local inputs take their value directly)."""
    element = browser.find_element(By.ID, element_id)
    browser.execute_script("arguments[0].value = arguments[1]", element, value)


def choose(browser: Any, element_id: str, value: str) -> None:
    browser.find_element(By.CSS_SELECTOR, f"#{element_id} option[value='{value}']").click()


def log_in(browser: Any, url: str, username: str, password: str, language: str) -> None:
    """Log in from the login page in `language` (logging out forgets the session's language)."""
    browser.get(f"{url}/lang/{language}?back=/login")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "login-submit").click()


def log_out(browser: Any) -> None:
    browser.find_element(By.ID, "logout").click()
    wait_for(browser, "login-form")


def api_json(browser: Any, url: str, path: str) -> Any:
    """A GET of the API with the browser's login session, as the console's own scripts read it."""
    browser.get(url + path)
    return json.loads(browser.find_element(By.TAG_NAME, "body").text)


def bearer_status(url: str, secret: str) -> int:
    request = urllib.request.Request(url + "/api/v1/plants", headers={"Authorization": f"Bearer {secret}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def screenshot(browser: Any, language: str, name: str) -> None:
    if language != "ja":
        return
    folder = Path(os.environ.get("PMS_SCREENSHOT_DIR", REPO / "var" / "screenshots" / "console-ja"))
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"people-{name}.png"
    assert browser.save_screenshot(str(target)) and target.stat().st_size > 10_000, f"{name}: blank picture"


def submit_and_wait(browser: Any, button: Any) -> None:
    """Send a form and wait until the page it leads to has replaced this one (finding an element of the
    old page instead races the navigation under load)."""
    page = browser.find_element(By.TAG_NAME, "html")
    button.click()
    WebDriverWait(browser, 10).until(ec.staleness_of(page))


@pytest.mark.parametrize("language", ["ja", "en"])
def test_people_flows(browser: Any, console: Console, language: str) -> None:
    url, registry, clock = console.url, console.registry, console.clock
    words = WORDS[language]
    log_in_as_admin(browser, url, ADMIN_KEY)
    browser.get(f"{url}/lang/{language}?back=/notices")
    wait_for(browser, "notice-form")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language

    # ---- a scheduled notice: from 23:55 to 00:30 JST, across midnight -----------------------------------
    choose(browser, "notice-kind", "maintenance")
    fill(browser, "notice-starts", "2026-12-03T23:55")
    fill(browser, "notice-ends", "2026-12-04T00:30")
    browser.find_element(By.ID, "notice-title").send_keys(WORDS["ja"]["title"])
    browser.find_element(By.ID, "notice-body").send_keys(WORDS["ja"]["body"])
    browser.find_element(By.ID, "notice-title-en").send_keys(WORDS["en"]["title"])
    browser.find_element(By.ID, "notice-body-en").send_keys(WORDS["en"]["body"])
    submit_and_wait(browser, browser.find_element(By.ID, "notice-create"))
    scheduled = wait_for(browser, "notices-scheduled")
    assert WORDS["ja"]["title"] in scheduled.text and "2026-12-04 00:30" in scheduled.text
    screenshot(browser, language, "notices")
    browser.get(url + "/")
    assert words["title"] not in wait_for(browser, "management-status").find_element(By.XPATH, "/html/body").text
    listed = api_json(browser, url, f"/api/v1/notices?state=current&lang={language}")
    assert listed["items"] == []
    clock.offset = timedelta(minutes=20)  # 00:10 JST on the next day: in its window
    browser.get(url + "/")
    notices = wait_for(browser, "notices")
    assert words["title"] in notices.text and words["body"] in notices.text and words["kind"] in notices.text
    other = "en" if language == "ja" else "ja"
    assert WORDS[other]["title"] not in notices.text
    screenshot(browser, language, "home-notice")
    [item] = api_json(browser, url, f"/api/v1/notices?state=current&lang={language}")["items"]
    assert (item["title"], item["body"], item["language"]) == (words["title"], words["body"], language)
    clock.offset = timedelta(minutes=41)  # 00:31: ended
    browser.get(url + "/")
    assert words["title"] not in wait_for(browser, "notices").text
    assert [n["title"] for n in api_json(browser, url, f"/api/v1/notices?state=past&lang={language}")["items"]] == \
        [words["title"]]

    # ---- a viewer of one customer, created by the admin -----------------------------------------------
    browser.get(url + "/users")
    browser.find_element(By.ID, "new-username").send_keys("viewer1")
    browser.find_element(By.ID, "new-password").send_keys("viewer password")
    choose(browser, "new-role", "viewer")
    choose(browser, "new-customer", "C00001")
    choose(browser, "new-language", language)
    submit_and_wait(browser, browser.find_element(By.ID, "user-create"))
    row = WebDriverWait(browser, 10).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-username='viewer1']")))
    assert {"ja": "閲覧者", "en": "Viewer"}[language] in row.text and "C00001" in row.text
    screenshot(browser, language, "users")
    browser.get(url + "/customers")
    wait_for(browser, "customers")
    screenshot(browser, language, "customers")
    log_out(browser)

    log_in(browser, url, "viewer1", "viewer password", language)
    wait_for(browser, "management-status")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == language
    nav = browser.find_element(By.TAG_NAME, "nav").text
    assert {"ja": "ユーザー", "en": "Users"}[language] not in nav
    for path in ("/", "/notices"):
        browser.get(url + path)
        WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.TAG_NAME, "main")))
        assert browser.find_elements(By.CSS_SELECTOR, "main form") == [], f"{path} offers a viewer a form"
    for path in ("/users", "/customers"):  # admin pages do not exist for others
        browser.get(url + path)
        assert browser.find_elements(By.ID, "users") == browser.find_elements(By.ID, "customers") == []
    browser.get(url + "/notices")
    token = browser.find_element(By.CSS_SELECTOR, "header input[name='csrf_token']").get_attribute("value")
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const body = new URLSearchParams({csrf_token: arguments[0], kind: 'info', title: 'forged', body: ''});"
        "fetch('/notices', {method: 'POST', body: body}).then((r) => done(r.status));", token)
    assert status == 403
    assert [n.title for n in registry.list_notices()[0]] == [WORDS["ja"]["title"]]

    # ---- an API key, shown once, then revoked -----------------------------------------------------------
    browser.get(url + "/keys")
    browser.find_element(By.ID, "key-label").send_keys("spreadsheet")
    assert [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#key-scope option")] == ["read"]
    submit_and_wait(browser, browser.find_element(By.ID, "key-create"))
    secret = wait_for(browser, "key-secret").text
    assert secret.startswith("pms_") and bearer_status(url, secret) == 200
    screenshot(browser, language, "keys")
    browser.get(url + "/keys")
    assert secret not in browser.page_source and browser.find_elements(By.ID, "key-secret") == []
    browser.find_element(By.CSS_SELECTOR, "#keys .key-revoke").click()
    Alert(browser).accept()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#keys tr.key-revoked")))
    assert bearer_status(url, secret) == 401
    log_out(browser)

    # ---- locked out by wrong passwords, unlocked by the admin -------------------------------------------
    for _ in range(5):
        log_in(browser, url, "viewer1", "wrong password", language)
        wait_for(browser, "login-form")
    locked = wait_for(browser, "login-locked").text
    user = registry.get_user("viewer1")
    assert user is not None and user.locked_until is not None
    until = user.locked_until.astimezone(timeutil.JST).strftime("%H:%M")
    assert until in locked
    assert ({"ja": "までログインできません", "en": "Locked out until"}[language]) in locked
    log_in(browser, url, "viewer1", "viewer password", language)  # the right password does not help now
    assert until in wait_for(browser, "login-locked").text
    log_in_as_admin(browser, url, ADMIN_KEY)
    browser.get(url + "/users")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-username='viewer1']")
    assert until in row.find_element(By.CLASS_NAME, "locked-until").text
    submit_and_wait(browser, row.find_element(By.CLASS_NAME, "user-unlock"))
    row = WebDriverWait(browser, 10).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "tr[data-username='viewer1']")))
    assert row.find_element(By.CLASS_NAME, "locked-until").text == "—"
    log_out(browser)
    log_in(browser, url, "viewer1", "viewer password", language)
    wait_for(browser, "management-status")
