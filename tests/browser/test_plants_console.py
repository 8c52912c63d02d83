"""Plant management in Debian's Chromium, in Japanese and then in English: register a plant from the form,
import 500 plants from a Shift_JIS CSV with two bad rows (reported row by row, nothing written until the
operator confirms, then the 498 good ones written), bind a claimed gateway to the new plant by the claim
code on its label, and change its price from next month: once next month has come, the price view of a
past month still shows the price it was sold at.

The console is served in this process, so the test moves the clock (timeutil.now_jst) the server reads."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_common.messages import EnergyReading
from pms_registry import Registry
from pms_registry.provisioning import FactoryRow
from pms_store import TimeSeriesStore
from tests.browser.serving import log_in_as_admin, served
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

ADMIN_KEY = "plants-browser-admin-key"
START = datetime(2026, 6, 17, 12, 0, tzinfo=timeutil.JST)
SOLD_ON = datetime(2026, 6, 10, 10, 0, tzinfo=timeutil.JST)  # four slots of 0.5 kWh from here
GATEWAYS = {"ja": FactoryRow("SN-PL-1", "factory-secret-plants-0123456789", "PLANT-LABEL-1"),
            "en": FactoryRow("SN-PL-2", "factory-secret-plants-9876543210", "PLANT-LABEL-2")}
BAD_ROWS = {102: "電話番号", 403: "緯度"}  # file lines (the header is line 1)

WORDS = {
    "ja": {"created": "を登録しました", "summary": "500 行中 498 行を取り込めます。エラー 2 行",
           "phone": "102行目 電話番号: 電話番号の形式ではありません", "lat": "403行目 緯度: 20〜46 の範囲で入力してください",
           "imported": "498 件を登録、0 件を更新しました", "bound": "ゲートウェイ {} を割り当てました",
           "added": "2026-07-01 からの単価 10 円/kWh を登録しました", "in_force": "適用中"},
    "en": {"created": "registered", "summary": "498 of 500 rows can be imported; the 2 rows",
           "phone": "row 102, phone: is not a phone number", "lat": "row 403, latitude: must be between 20 and 46",
           "imported": "498 plants registered, 0 updated", "bound": "Gateway {} bound",
           "added": "Price 10 yen/kWh from 2026-07-01 added", "in_force": "In force"},
}


@dataclass
class Console:
    url: str
    registry: Registry
    store: TimeSeriesStore
    clock: dict[str, datetime]


@pytest.fixture
def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_CONSOLE_REFRESH_S"):
        monkeypatch.delenv(name, raising=False)
    clock = {"now": START}
    started = time.monotonic()
    monkeypatch.setattr(timeutil, "now_jst", lambda: clock["now"] + timedelta(seconds=time.monotonic() - started))
    # The test moves the console's clock weeks ahead (a tariff coming into force): the login must last.
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN_KEY, console_session_idle_s=90 * 86400,
                                 console_session_max_s=90 * 86400))
    registry: Registry = app.config["registry"]
    registry.ensure_customer("C00001", "デモ電力")
    registry.ensure_customer("C00002", "サンプル発電")
    registry.import_factory_gateways(list(GATEWAYS.values()), START)
    for row in GATEWAYS.values():
        registry.record_claim(row.serial, START)  # the gateways claimed at first boot, waiting for a plant
    try:
        with served(app) as url:
            yield Console(url, registry, app.config["store"], clock)
    finally:
        app.config["store"].close()
        registry.close()


def _plants_file(path: Path, lang: str) -> Path:
    """500 plants in Shift_JIS with Japanese headers, as Japanese Excel saves them; two rows are bad."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["サービスコード", "顧客ID", "発電所名", "住所", "電話番号", "緯度", "経度", "容量(kW)",
                     "売電単価(円/kWh)", "傾斜角(度)"])
    for line in range(2, 502):
        phone = "12" if line in BAD_ROWS and BAD_ROWS[line] == "電話番号" else f"029-{line:03d}-4567"
        latitude = "99" if line in BAD_ROWS and BAD_ROWS[line] == "緯度" else f"{36 + line / 1000:.3f}"
        writer.writerow(["", "C00002", f"髙橋太陽光{lang}第{line - 1}号", "茨城県つくば市千現１－２", phone, latitude,
                         "140.11", "49.5", "18", "30"])
    target = path / f"plants-{lang}.csv"
    target.write_bytes(buffer.getvalue().encode("cp932"))
    return target


def _flash(driver: Any, text: str) -> None:
    WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"), text))


def _fill(driver: Any, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = driver.find_element(By.ID, name)
        field.clear()
        field.send_keys(value)


def _shoot(driver: Any, name: str, tmp_path: Path) -> None:
    """Screenshots of the plant pages in Japanese, for a person to look at (PMS_SCREENSHOT_DIR keeps them)."""
    folder = Path(os.environ.get("PMS_SCREENSHOT_DIR", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))


def _price_chart(driver: Any) -> list[float | None]:
    """The amounts the price view draws (plotly keeps the data it drew on the chart's element)."""
    def drawn() -> Any:
        return driver.execute_script("const el = document.getElementById('chart-price');"
                                     "return el && el.data && el.data.length ? el.data[0].y : null;")
    wait_until(lambda: drawn() is not None, 15, "the price chart drawn")
    return list(drawn())


def test_plants_tariffs_and_csv_from_the_console_in_both_languages(browser: Any, console: Console,
                                                                   tmp_path: Path) -> None:
    log_in_as_admin(browser, console.url, ADMIN_KEY)
    for lang in ("ja", "en"):
        words = WORDS[lang]
        console.clock["now"] = START
        browser.get(f"{console.url}/lang/{lang}")
        # 1. Register a plant from the form (a bad latitude first: the field is named, nothing written).
        browser.find_element(By.ID, "nav-plants-admin").click()
        browser.find_element(By.CSS_SELECTOR, "#new-plant summary").click()
        Select(browser.find_element(By.ID, "customer_id")).select_by_value("C00001")
        _fill(browser, {"name": f"つくば第一発電所 {lang}", "address": "茨城県つくば市", "phone": "029-123-4567",
                        "latitude": "91", "longitude": "140.11", "tariff_yen_per_kwh": "16", "tilt_deg": "30"})
        browser.find_element(By.ID, "create-plant").click()
        # The form comes back with the problem once the POST is answered: wait for it, as for a flash.
        problem = WebDriverWait(browser, 10).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, ".form-problem"))).text
        assert ("緯度" if lang == "ja" else "latitude") in problem
        before = console.registry.count_plants()
        _fill(browser, {"latitude": "36.08"})
        browser.find_element(By.ID, "create-plant").click()
        _flash(browser, words["created"])
        code = browser.current_url.rstrip("/").rsplit("/", 1)[1]
        assert console.registry.count_plants() == before + 1
        assert browser.find_element(By.ID, "plant-name").text.startswith(f"つくば第一発電所 {lang}")
        if lang == "ja":
            _shoot(browser, "plant-detail", tmp_path)
        # 2. Bind the claimed gateway by the claim code on its label.
        gateway_id = console.registry.gateway_for_claim_code(GATEWAYS[lang].claim_code)
        browser.find_element(By.CSS_SELECTOR, "#bind-gateway summary").click()
        browser.find_element(By.ID, "claim_code").send_keys(GATEWAYS[lang].claim_code)
        browser.find_element(By.ID, "bind-submit").click()
        _flash(browser, words["bound"].format(gateway_id))
        assert browser.find_element(By.CSS_SELECTOR, "#plant-gateways a").text == gateway_id
        # 3. Import 500 plants: the preview reports the two bad rows and writes nothing.
        browser.find_element(By.ID, "nav-plants-admin").click()
        if lang == "ja":
            _shoot(browser, "plants-admin", tmp_path)
        browser.find_element(By.ID, "import-file").send_keys(str(_plants_file(tmp_path, lang)))
        browser.find_element(By.ID, "import-preview").click()
        WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "import-summary")))
        assert words["summary"] in browser.find_element(By.ID, "import-summary").text
        bad = browser.find_elements(By.CSS_SELECTOR, "#import-rows tr.bad-row")
        assert [row.get_attribute("data-row") for row in bad] == ["102", "403"]
        assert words["phone"] in bad[0].text and words["lat"] in bad[1].text
        assert console.registry.count_plants() == before + 1  # nothing written yet
        if lang == "ja":
            _shoot(browser, "plants-import-preview", tmp_path)
        browser.find_element(By.ID, "confirm-import").click()
        _flash(browser, words["imported"])
        assert console.registry.count_plants() == before + 1 + 498
        # 4. The plant sold 2 kWh on 06-10 at 16 yen; a price of 10 from next month is added today...
        console.store.write_readings(gateway_id, power=[], energy=[
            EnergyReading(slot_end=SOLD_ON + timedelta(minutes=30 * i), forward_kwh=5.0, reverse_kwh=50.0 + 0.5 * i,
                          register_wrap_kwh=100_000.0) for i in range(5)])
        browser.get(f"{console.url}/plants/{code}/tariffs")
        assert browser.find_element(By.ID, "effective_from").get_attribute("value") == "2026-07-01"
        _fill(browser, {"yen_per_kwh": "10"})
        browser.find_element(By.ID, "add-tariff").click()
        _flash(browser, words["added"])
        if lang == "ja":
            _shoot(browser, "plant-tariffs", tmp_path)
        # ...and once July has come, June's price view still shows what June was sold at: 2 kWh × 16.
        console.clock["now"] = START + timedelta(days=18)
        browser.refresh()
        in_force = browser.find_element(By.CSS_SELECTOR, "#tariff-history tr.tariff-in_force")
        assert "10" in in_force.text and words["in_force"] in in_force.text
        browser.get(f"{console.url}/plants/{code}")
        browser.execute_script("document.getElementById('day').value = '2026-06-10';"
                               "document.getElementById('day-picker').requestSubmit();")
        wait_until(lambda: (_price_chart(browser) + [None] * 10)[9] is not None, 15, "June's price drawn")
        june = _price_chart(browser)
        assert june[9] == 32.0 and [amount for i, amount in enumerate(june) if i != 9 and amount] == []
        assert console.registry.get_plant(code).tariff_yen_per_kwh == 10.0  # type: ignore[union-attr]
    # The refused form answered 422 on purpose (the browser logs it); nothing else may fail.
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"
              and not e["message"].endswith("/manage/plants - Failed to load resource: the server responded with a "
                                            "status of 422 (UNPROCESSABLE ENTITY)")]
    assert errors == []
