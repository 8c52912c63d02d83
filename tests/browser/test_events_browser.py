"""Acceptance (issue 15, events) in Debian's Chromium, in ja and en: an operator filters the event log
by state and plant, acknowledges an open alert's event with a comment, and the CSV export link keeps
the filters; the registry and the page show the acknowledgement."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_registry import Registry
from tests.browser.serving import log_in_as_admin, served
from tests.event_seeding import fire_no_generation

pytestmark = pytest.mark.integration

ADMIN_KEY = "events-browser-admin-key"
WORDS = {"ja": ("未対応", "確認しました", "確認済み"), "en": ("Open", "acknowledged", "Acknowledged")}


@dataclass
class Seeded:
    url: str
    registry: Registry
    codes: list[str]


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN_KEY))
    registry: Registry = app.config["registry"]
    now = timeutil.now_jst()
    registry.ensure_customer("C00001", "デモ電力")
    codes = [registry.create_plant(customer_id="C00001", name=name, address="茨城県つくば市", phone="029-000-0000",
                                   created_at=now) for name in ("つくば第一", "つくば第二")]
    for index, code in enumerate(codes):
        registry.open_event(kind="gateway_offline", at=now - timedelta(hours=3 + index), message="down",
                            gateway_id=f"gw-{index}", service_code=code, params={"gateway_id": f"gw-{index}"})
        registry.recover_event(kind="gateway_offline", gateway_id=f"gw-{index}", at=now - timedelta(hours=2))
        fire_no_generation(registry, code, f"gw-{index}", now - timedelta(minutes=30 + index))
    try:
        with served(app) as url:
            yield Seeded(url, registry, codes)
    finally:
        app.config["store"].close()
        registry.close()


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_filter_acknowledge_and_export_events(browser: Any, seeded: Seeded, lang: str) -> None:
    open_word, done_word, acked_word = WORDS[lang]
    log_in_as_admin(browser, seeded.url, ADMIN_KEY)
    browser.get(f"{seeded.url}/lang/{lang}?back=/events")
    browser.find_element(By.ID, "nav-events").click()
    # per plant: a recovered gateway_offline and an open no_generation alert
    assert len(browser.find_elements(By.CSS_SELECTOR, "#events tbody tr[data-event]")) == 4
    Select(browser.find_element(By.ID, "filter-state")).select_by_visible_text(open_word)
    browser.find_element(By.ID, "filter-plant").send_keys(seeded.codes[0])
    browser.find_element(By.ID, "filter-apply").click()
    WebDriverWait(browser, 10).until(lambda d: "state=open" in d.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr[data-event]")
    assert [row.get_attribute("data-phase") for row in rows] == ["raised"]
    assert "つくば第一" in rows[0].text
    event_id = int(rows[0].get_attribute("data-event"))
    link = urlsplit(browser.find_element(By.ID, "events-csv").get_attribute("href"))
    assert link.path == "/api/v1/events" and {k: v[0] for k, v in parse_qs(link.query).items()} == {
        "service_code": seeded.codes[0], "state": "open", "format": "csv", "lang": lang, "headers": lang}
    rows[0].find_element(By.NAME, "comment").send_keys("現地確認を手配 / site visit booked")
    rows[0].find_element(By.CSS_SELECTOR, ".ack-form button").click()
    WebDriverWait(browser, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), done_word))
    event = seeded.registry.get_event(event_id)
    assert event is not None and (event.acknowledged_by, event.ack_comment) == ("admin", "現地確認を手配 / site visit booked")
    # still filtered on open events: the acknowledged one has left the list
    assert browser.find_elements(By.CSS_SELECTOR, "#events tbody tr[data-event]") == []
    Select(browser.find_element(By.ID, "filter-state")).select_by_visible_text(acked_word)
    browser.find_element(By.ID, "filter-apply").click()
    WebDriverWait(browser, 10).until(lambda d: "state=acknowledged" in d.current_url)
    [row] = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr[data-event]")
    assert "site visit booked" in row.find_element(By.CSS_SELECTOR, ".ack").text
