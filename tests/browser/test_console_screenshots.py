"""Screenshots of the console in Japanese, for people to look at: home, the cross-plant list and its
graph view, a plant's page, a gateway's page and the admin pages, from a registry that looks like a
small fleet's. The test also checks what a look would: Japanese glyphs come from a real CJK font
(Debian's fonts-noto-cjk, named in the console's font stack), every page renders without a browser
error, and no page is blank.

The pictures go to $PMS_SCREENSHOT_DIR, by default var/screenshots/console-ja in the repo.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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
from pms_common.messages import EnergyReading, PowerReading
from pms_registry import Registry
from tests.browser.serving import log_in_as_admin, served

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "screenshot-admin-key"
PLANTS = 24


@pytest.fixture
def console_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Registry, list[str]]]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_CONSOLE_REFRESH_S"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN_KEY))
    registry, store = app.config["registry"], app.config["store"]
    now = timeutil.now_jst()
    start, _ = timeutil.today_bounds(now)
    registry.ensure_customer("C00001", "東都ソーラー株式会社")
    registry.ensure_customer("C00002", "みなと発電合同会社")
    cities = ("東京都江東区青海2-7-4", "大阪府大阪市北区梅田3-1-1", "愛知県名古屋市中村区名駅1-1-4",
              "福岡県福岡市博多区博多駅中央街1-1", "北海道札幌市北区北6条西4丁目")
    codes = []
    for index in range(PLANTS):
        code = registry.create_plant(
            customer_id="C00001" if index % 3 else "C00002", name=f"第{index + 1}太陽光発電所",
            address=cities[index % len(cities)], phone=f"03-1234-{5600 + index:04d}", created_at=now,
            latitude=35.6 + index * 0.01, longitude=139.7, capacity_kw=49.5, tariff_yen_per_kwh=16.0)
        codes.append(code)
        if index % 6 == 5:
            continue  # some plants have no gateway yet
        gateway = f"gw-s{index:02d}"
        registry.bind_gateway(gateway, code)
        registry.record_gateway_status(gateway, "offline" if index % 7 == 3 else "online", now)
        slots = int((now - start).total_seconds() // 1800)
        store.write_readings(gateway, power=[
            PowerReading(measured_at=now - timedelta(minutes=m), power_w=-(3000 + 150 * index + 20 * m),
                         current_r_a=10.0, current_t_a=10.0) for m in range(0, 120, 2)],
            energy=[EnergyReading(slot_end=start + timedelta(minutes=30 * (i + 1)), forward_kwh=0.2 * i,
                                  reverse_kwh=1.5 * i + index * 0.1) for i in range(slots)])
    registry.create_notice(kind="maintenance", title="クラウド定期メンテナンスのお知らせ",
                           body="12月10日 2:00〜4:00 はグラフの更新が止まります。", created_at=now,
                           starts_at=now - timedelta(hours=1), ends_at=now + timedelta(days=7))
    registry.open_event(kind="gateway_offline", at=now - timedelta(minutes=40),
                        message="gateway gw-s03 offline", gateway_id="gw-s03", service_code=codes[3])
    with served(app) as url:
        yield url, registry, codes
    store.close()
    registry.close()


def _pages(codes: list[str]) -> dict[str, str]:
    """Name of the picture → the console path it shows."""
    return {
        "home": "/", "sales-list": "/sales", "sales-graph": "/sales/graph", "plant": f"/plants/{codes[1]}",
        "gateways": "/gateways", "gateway": "/gateways/gw-s01", "alerts": "/alerts", "alert-rules": "/alert-rules",
        "channels": "/channels", "audit": "/audit", "rollouts": "/rollouts", "events": "/events",
        "plants-admin": "/manage/plants", "tariffs": f"/plants/{codes[1]}/tariffs", "plant-edit": f"/plants/{codes[1]}/edit",
        "users": "/users", "customers": "/customers", "notices": "/notices", "keys": "/keys",
    }


def test_screenshots_of_the_console_in_japanese(browser: Any, console_url: tuple[str, Registry, list[str]]) -> None:
    url, _registry, codes = console_url
    folder = Path(os.environ.get("PMS_SCREENSHOT_DIR", REPO / "var" / "screenshots" / "console-ja"))
    folder.mkdir(parents=True, exist_ok=True)
    log_in_as_admin(browser, url, ADMIN_KEY)
    browser.get(url + "/lang/ja?back=/")
    written = []
    for name, path in _pages(codes).items():
        browser.get(url + path)
        WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.TAG_NAME, "main")))
        WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
        browser.execute_script("return new Promise((done) => setTimeout(done, 600))")  # charts draw after load
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
        assert browser.find_element(By.TAG_NAME, "main").text.strip(), f"{path} shows nothing"
        target = folder / f"{name}.png"
        assert browser.save_screenshot(str(target)) and target.stat().st_size > 10_000, f"{name}: blank picture"
        written.append(target)
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, f"{path}: {errors}"
    # The glyphs are a real Japanese font's, not tofu: the stack's Noto Sans CJK is installed and used.
    assert browser.execute_script(
        "return document.fonts.check('16px \"Noto Sans CJK JP\"', '売電状況')"), "Noto Sans CJK JP is not available"
    assert len(written) == len(_pages(codes))
