"""Acceptance 4 of issue 13, in Debian's Chromium: an operator logs in through the login page,
acknowledges a firing alert with a comment, edits a rule's threshold (no_generation's irradiance,
350 → 400 W/m²) and adds a webhook channel; each is checked in the registry afterwards and on the page.

The firing alert is seeded through the registry's own steps (`save_alert`, then `fire_alert`), as
the alerts service takes them; the service itself does not run here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_registry import Registry
from pms_registry.records import AlertRecord
from tests.browser.serving import log_in_as_admin, served

pytestmark = pytest.mark.integration

ADMIN_KEY = "alerts-browser-admin-key"
HOOK_URL = "https://hooks.example.jp/pms/alerts"


@dataclass
class Seeded:
    url: str
    registry: Registry
    alert: AlertRecord
    service_code: str


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_CONSOLE_REFRESH_S"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN_KEY))
    registry: Registry = app.config["registry"]
    now = timeutil.now_jst()
    registry.ensure_customer("C00001", "デモ電力")
    code = registry.create_plant(customer_id="C00001", name="太陽光1号", address="茨城県つくば市", phone="029-000-0000",
                                 created_at=now, latitude=36.08, longitude=140.11, capacity_kw=49.5)
    registry.bind_gateway("gw-alert-01", code, at=now)
    rule = next(r for r in registry.list_alert_rules("no_generation") if r.scope == "global")
    params = {"irradiance_w_m2": 640, "threshold_w_m2": 350, "sold_w": 0, "for_s": 1800}
    pending = registry.save_alert(AlertRecord(
        alert_id=None, kind="no_generation", subject=code, service_code=code, gateway_id="gw-alert-01",
        rule_id=rule.rule_id, severity=rule.severity, state="pending", pending_since=now - timedelta(minutes=30),
        firing_since=None, clear_since=None, resolved_at=None, flapping=False, raise_times=[], acknowledged_at=None,
        acknowledged_by=None, ack_comment=None, event_id=None, params=params, updated_at=None))
    alert, _ = registry.fire_alert(pending, at=now, message=f"{code}: no generation at 640 W/m²", params=params)
    try:
        with served(app) as url:
            yield Seeded(url, registry, alert, code)
    finally:
        app.config["store"].close()
        registry.close()


def _login(driver: Any, url: str) -> None:
    log_in_as_admin(driver, url, ADMIN_KEY)


def _flash(driver: Any, words: str) -> None:
    WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), words))


def test_an_operator_acknowledges_an_alert_edits_a_threshold_and_adds_a_webhook(browser: Any, seeded: Seeded) -> None:
    _login(browser, seeded.url)
    browser.get(f"{seeded.url}/lang/ja")
    # 1. The alert, reached from the nav: firing, with its plant; acknowledged with a comment.
    browser.find_element(By.ID, "nav-alerts").click()
    row = f'#alerts tr[data-alert="{seeded.alert.alert_id}"]'
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .state").text == "発生中"
    assert "太陽光1号" in browser.find_element(By.CSS_SELECTOR, row).text
    browser.find_element(By.CSS_SELECTOR, f"{row} .ack-form input[name=comment]").send_keys("現地へ向かっています")
    browser.find_element(By.CSS_SELECTOR, f"{row} .ack-button").click()
    _flash(browser, "確認しました")
    assert "現地へ向かっています" in browser.find_element(By.CSS_SELECTOR, f"{row} .ack").text
    assert "admin" in browser.find_element(By.CSS_SELECTOR, f"{row} .ack").text
    assert not browser.find_elements(By.CSS_SELECTOR, f"{row} .ack-form")
    stored = seeded.registry.get_alert(seeded.alert.alert_id)  # type: ignore[arg-type]
    assert stored is not None and stored.state == "firing"
    assert (stored.acknowledged_by, stored.ack_comment) == ("admin", "現地へ向かっています")
    assert any(e.kind == "alert_acknowledged" for e in seeded.registry.list_events(limit=10))

    # 2. no_generation's default threshold: 350 → 400 W/m² on the rule's page.
    rule = next(r for r in seeded.registry.list_alert_rules("no_generation") if r.scope == "global")
    assert rule.params["irradiance_w_m2"] == 350
    browser.find_element(By.ID, "nav-alert-rules").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "alert-rules")))
    browser.find_element(By.CSS_SELECTOR, f"#rule-{rule.rule_id} a.rule-edit").click()
    field = WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "param-irradiance_w_m2")))
    assert field.get_attribute("value") == "350"
    field.clear()
    field.send_keys("400")
    browser.find_element(By.ID, "rule-save").click()
    _flash(browser, "ルールを保存しました")
    shown = browser.find_element(By.CSS_SELECTOR, f'#rule-{rule.rule_id} .param[data-param="irradiance_w_m2"]').text
    assert shown == "irradiance_w_m2 = 400"
    saved = seeded.registry.get_alert_rule(rule.rule_id)
    assert saved is not None and saved.params["irradiance_w_m2"] == 400 and saved.updated_by == "user:admin"
    assert (saved.severity, saved.raise_for_s, saved.clear_for_s, saved.enabled) == \
        (rule.severity, rule.raise_for_s, rule.clear_for_s, rule.enabled)

    # 3. A webhook channel for the customer: its secret on the answering page only.
    browser.find_element(By.ID, "nav-channels").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "channel-form")))
    browser.find_element(By.ID, "channel-name").send_keys("運用チーム Webhook")
    browser.find_element(By.ID, "channel-url").send_keys(HOOK_URL)
    browser.find_element(By.CSS_SELECTOR, "#channel-customer option[value=C00001]").click()
    browser.find_element(By.ID, "channel-add").click()
    secret = WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "secret-value"))).text
    channels = seeded.registry.list_channels("C00001")
    assert [(c.kind, c.name, c.enabled, c.config["url"]) for c in channels] == \
        [("webhook", "運用チーム Webhook", True, HOOK_URL)]
    assert channels[0].config["secrets"] == [secret] and secret.startswith("whsec_")
    row = f'#channels tr[data-channel="{channels[0].channel_id}"]'
    assert HOOK_URL in browser.find_element(By.CSS_SELECTOR, f"{row} .target").text
    browser.find_element(By.ID, "nav-channels").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
    assert secret not in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, f"{row} .secret-hint").text.startswith(f"…{secret[-4:]}")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
