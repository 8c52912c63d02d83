"""Rollouts in the console, in Debian's Chromium: the list with each group's bar, one rollout with its
groups counted by state and each gateway's row, the pause button, and a gateway's report (written to
the registry as device-manager does) showing on the open page without a reload.

The registry holds a signed image and a rollout of 20 gateways in 3 groups (2, 8, 10) driven into
mixed states through the registry's own steps: the canary committed, the second group part way
(committed, downloading, queued, one rolled back, one failed), the third not started."""

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
from pms_common.firmware import generate_private_key_pem, load_private_key, sign_image
from pms_registry import Registry
from pms_registry.rollouts import RolloutRecord
from tests.browser.serving import log_in_as_admin, served
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

ADMIN_KEY = "rollout-browser-admin-key"
GATEWAYS = [f"gw-ro-{n:02d}" for n in range(20)]
SETTINGS = {"success_threshold": 0.9, "error_threshold": 0.5, "error_action": "pause", "min_group_size": 2,
            "deadline_s": 3600.0, "health_timeout_s": 300.0, "window": "any"}
# What the second group's 8 members have reported, in their order: (state, reason) after the job.
SECOND_GROUP = [("committed", None), ("committed", None), ("committed", None), ("downloading", None),
                ("downloading", None), ("rolled_back", "health check failed: no readings acked in 300 s"),
                ("failed", "bad signature"), ("queued", None)]


@dataclass
class Seeded:
    url: str
    registry: Registry
    rollout: RolloutRecord
    groups: list[list[str]]  # member gateway ids, group by group


def _report(registry: Registry, rollout: RolloutRecord, gateway_id: str, state: str, reason: str | None,
            version: str) -> None:
    outcome = registry.record_update_report(gateway_id=gateway_id, job_id=f"{rollout.rollout_id}.{gateway_id}",
                                            state=state, version=version, reason=reason, at=timeutil.now_jst())
    assert outcome == "recorded", (gateway_id, state, outcome)


def _walk(registry: Registry, rollout: RolloutRecord, gateway_id: str, state: str, reason: str | None) -> None:
    """A member taken from pending to `state` the way device-manager and its gateway take it."""
    now = timeutil.now_jst()
    assert registry.mark_rollout_job_sent(rollout.rollout_id, gateway_id, now, now + timedelta(hours=1))
    if state == "queued":
        return
    _report(registry, rollout, gateway_id, "downloading", None, "1.0.0")
    if state == "failed":
        _report(registry, rollout, gateway_id, "failed", reason, "1.0.0")
    elif state == "rolled_back":
        for step in ("verifying", "installing", "restarting", "checking_health"):
            _report(registry, rollout, gateway_id, step, None, "1.0.0" if step != "checking_health" else "2.0.0")
        _report(registry, rollout, gateway_id, "rolled_back", reason, "1.0.0")
    elif state == "committed":
        for step in ("verifying", "installing", "restarting", "checking_health"):
            _report(registry, rollout, gateway_id, step, None, "1.0.0" if step != "checking_health" else "2.0.0")
        _report(registry, rollout, gateway_id, "committed", None, "2.0.0")


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
                                 created_at=now, latitude=36.08, longitude=140.11)
    for gateway_id in GATEWAYS:
        registry.record_gateway_status(gateway_id, "online", now)
        registry.bind_gateway(gateway_id, code, at=now)
    image = tmp_path / "pms_collector-2.0.0-py3-none-any.whl"
    image.write_bytes(b"not really a wheel, but signed all the same" * 100)
    manifest = sign_image(load_private_key(generate_private_key_pem()), image, "2.0.0", min_version="1.0.0", at=now)
    registry.add_firmware_image(manifest.model_dump(mode="json"), now, "admin")
    rollout = registry.create_rollout(image_sha256=manifest.sha256, version="2.0.0", target={"customer": "C00001"},
                                      group_sizes=[10, 50, 100], created_by="user:admin", at=now, **SETTINGS)
    groups = [[m.gateway_id for m in registry.rollout_gateways(rollout.rollout_id, index)] for index in range(3)]
    assert [len(g) for g in groups] == [2, 8, 10]
    for gateway_id in groups[0]:
        _walk(registry, rollout, gateway_id, "committed", None)
    assert registry.advance_group(rollout.rollout_id, 1, timeutil.now_jst())
    for gateway_id, (state, reason) in zip(groups[1], SECOND_GROUP, strict=True):
        _walk(registry, rollout, gateway_id, state, reason)
    try:
        with served(app) as url:
            yield Seeded(url, registry, rollout, groups)
    finally:
        app.config["store"].close()
        registry.close()


def _login(driver: Any, url: str) -> None:
    log_in_as_admin(driver, url, ADMIN_KEY)


def _text(driver: Any, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def _group_counts(driver: Any, group: int) -> dict[str, int]:
    """A group's row: its members by state as the page shows them (state → count)."""
    spans = driver.find_elements(By.CSS_SELECTOR, f'#rollout-groups tr[data-group="{group}"] .counts .count')
    return {s.get_attribute("data-state"): int(s.find_element(By.TAG_NAME, "b").text) for s in spans}


def _band(driver: Any, group: int, band: str) -> int:
    span = driver.find_element(By.CSS_SELECTOR, f'#rollout-groups tr[data-group="{group}"] [data-band="{band}"]')
    return int(span.get_attribute("data-count"))


def _row(driver: Any, gateway_id: str) -> dict[str, str]:
    row = f'#rollout-gateways tr[data-gateway="{gateway_id}"]'
    return {name: _text(driver, f"{row} .{name}") for name in ("group", "state", "reason", "versions")}


def test_rollouts_show_group_and_gateway_progress_pause_and_follow_reports(browser: Any, seeded: Seeded) -> None:
    rollout_id = seeded.rollout.rollout_id
    _login(browser, seeded.url)
    browser.get(f"{seeded.url}/lang/ja")
    # The list, reached from the nav: the rollout with one bar per group, committed of each group's size.
    browser.find_element(By.ID, "nav-rollouts").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "rollouts")))
    row = f'#rollouts tr[data-rollout="{rollout_id}"]'
    assert _text(browser, f"{row} .state") == "実行中"
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, f"{row} .group-line .num")] == \
        ["2/2", "3/8", "0/10"]
    # The rollout's page: each group's members by state, and each gateway's row.
    browser.find_element(By.LINK_TEXT, rollout_id).click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "rollout-groups")))
    assert _text(browser, "#rollout-state") == "実行中"
    assert _group_counts(browser, 0) == {"committed": 2}
    assert _group_counts(browser, 1) == {"queued": 1, "downloading": 2, "committed": 3, "rolled_back": 1, "failed": 1}
    assert _group_counts(browser, 2) == {"pending": 10}
    assert [_text(browser, f'#rollout-groups tr[data-group="{g}"] .started') for g in range(3)] == \
        ["はい", "はい", "いいえ"]
    assert (_band(browser, 1, "committed"), _band(browser, 1, "under_way"), _band(browser, 1, "in_error")) == (3, 3, 2)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#rollout-gateways tbody tr")) == 20
    rolled_back, failed, downloading = seeded.groups[1][5], seeded.groups[1][6], seeded.groups[1][3]
    assert _row(browser, rolled_back) == {"group": "2", "state": "切り戻し", "reason": SECOND_GROUP[5][1],
                                          "versions": "1.0.0 → 1.0.0"}
    assert _row(browser, failed) == {"group": "2", "state": "失敗", "reason": "bad signature",
                                     "versions": "1.0.0 → 1.0.0"}
    assert _row(browser, seeded.groups[0][0])["versions"] == "1.0.0 → 2.0.0"
    assert _row(browser, seeded.groups[2][0]) == {"group": "3", "state": "未送信", "reason": "", "versions": "— → —"}
    # Pause: the rollout is paused in the registry and on the page, which now offers resume instead.
    assert browser.find_element(By.ID, "rollout-resume").is_displayed() is False
    browser.find_element(By.ID, "rollout-pause").click()
    WebDriverWait(browser, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), "一時停止しました"))
    assert _text(browser, "#rollout-state") == "一時停止"
    found = seeded.registry.rollout(rollout_id)
    assert found is not None and found.state == "paused"
    assert browser.find_element(By.ID, "rollout-resume").is_displayed()
    assert browser.find_element(By.ID, "rollout-pause").is_displayed() is False
    # A gateway mid-update goes on while paused: its report, written to the registry as device-manager
    # writes it, shows on the open page (no reload: the marker set in this page survives).
    browser.execute_script("window.notReloaded = true;")
    for step in ("verifying", "installing", "restarting", "checking_health", "committed"):
        _report(seeded.registry, seeded.rollout, downloading, step, None, "2.0.0" if step in (
            "checking_health", "committed") else "1.0.0")
    wait_until(lambda: _row(browser, downloading)["state"] == "更新完了", 10, "the report on the page")
    assert _row(browser, downloading)["versions"] == "1.0.0 → 2.0.0"
    assert _group_counts(browser, 1)["committed"] == 4 and _group_counts(browser, 1)["downloading"] == 1
    assert _band(browser, 1, "committed") == 4
    assert browser.execute_script("return window.notReloaded === true;")
    # The pause is in the audit log, linked to the rollout; and the page reads in English too.
    browser.get(f"{seeded.url}/audit")
    entries = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#audit-log tbody tr")]
    assert any("ロールアウト一時停止" in e and rollout_id in e and "user:admin" in e for e in entries), entries
    browser.get(f"{seeded.url}/lang/en?back=/rollouts/{rollout_id}")
    assert _text(browser, "#rollout-state") == "Paused"
    assert _row(browser, rolled_back)["state"] == "Rolled back"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
