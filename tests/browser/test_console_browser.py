"""The console in Debian's headless Chromium (selenium + Debian's chromedriver): log in, every screen
in both languages, the sales list refreshing with a new reading, and a CSV download."""

from __future__ import annotations

import time
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
from pms_common.messages import EnergyReading, PowerReading, Weather
from pms_registry import Registry
from pms_store import TimeSeriesStore
from tests.browser.chromium import start_chromium
from tests.browser.serving import served
from tests.conftest import wait_until

pytestmark = pytest.mark.integration

ADMIN_KEY = "browser-admin-key"


@dataclass
class Console:
    url: str
    registry: Registry
    store: TimeSeriesStore
    codes: list[str]
    downloads: Path


@pytest.fixture
def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_CONSOLE_REFRESH_S"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN_KEY))
    registry, store = app.config["registry"], app.config["store"]
    now = timeutil.now_jst()
    start, _ = timeutil.today_bounds(now)
    registry.ensure_customer("C00001", "デモ")
    codes = []
    for index in range(2):
        code = registry.create_plant(customer_id="C00001", name=f"発電所{index}", address="東京都江東区",
                                     phone="03-0000-0000", created_at=now, tariff_yen_per_kwh=16.0)
        registry.bind_gateway(f"gw-b{index}", code)
        codes.append(code)
    store.write_readings("gw-b0", power=[], energy=[
        EnergyReading(slot_end=start + timedelta(minutes=30 * i), forward_kwh=1.0, reverse_kwh=10.0 + i)
        for i in range(4)])
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with served(app) as url:
        yield Console(url, registry, store, codes, downloads)
    store.close()
    registry.close()


@pytest.fixture
def browser(console: Console, tmp_path: Path) -> Iterator[Any]:
    driver = start_chromium(tmp_path / "chromium-profile", console.downloads)
    yield driver
    driver.quit()


def _login(driver: Any, console: Console) -> None:
    driver.get(console.url + "/")
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "login-form")))
    driver.find_element(By.ID, "username").send_keys("admin")
    driver.find_element(By.ID, "password").send_keys(ADMIN_KEY)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "management-status")))


def _text(driver: Any) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_every_screen_in_both_languages(browser: Any, console: Console) -> None:
    _login(browser, console)
    screens = [("/", "管理状況", "Management status"), ("/sales", "現在の売電電力", "Current sold power"),
               ("/sales/graph", "グラフ表示", "Graph"), (f"/plants/{console.codes[0]}", "時間別売電量", "Energy by hour")]
    for language in ("ja", "en"):
        browser.get(f"{console.url}/lang/{language}")
        for path, japanese, english in screens:
            browser.get(console.url + path)
            assert (japanese if language == "ja" else english) in _text(browser), (language, path)
    # The graph view drew a sparkline of today's sold power in each plant's row (static/sales.js).
    browser.get(console.url + "/sales/graph")
    wait_until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#plants td.spark svg.sparkline")) == 2, 15,
               "the sparklines")
    browser.get(f"{console.url}/plants/{console.codes[0]}")
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#chart-energy-hour .bars .point path"), 15,
               "the hourly energy bars")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_the_sales_list_refreshes_with_new_readings(browser: Any, console: Console) -> None:
    _login(browser, console)
    browser.get(console.url + "/lang/ja?back=/sales")
    cell = f'tr[data-code="{console.codes[1]}"] .sold-w'
    assert browser.find_element(By.CSS_SELECTOR, cell).text == "未計測"
    first_stamp = wait_until(lambda: browser.find_element(By.ID, "updated-at").text, 10, "the first refresh")
    assert first_stamp.endswith("JST")  # Japan time, though this browser runs in UTC
    console.store.write_readings("gw-b1", power=[PowerReading(measured_at=timeutil.now_jst(), power_w=-3210)],
                                 energy=[])
    began = time.monotonic()
    wait_until(lambda: browser.find_element(By.CSS_SELECTOR, cell).text == "3,210 W", 25, "the list to refresh")
    assert time.monotonic() - began < 25
    assert browser.find_element(By.ID, "updated-at").text != first_stamp
    assert browser.current_url.endswith("/sales")  # refreshed in place, not reloaded


def test_csv_download_is_utf8_with_bom(browser: Any, console: Console) -> None:
    _login(browser, console)
    browser.get(f"{console.url}/plants/{console.codes[0]}")
    link = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "csv-energy-hour")
                                            if "format=csv" in d.find_element(By.ID, "csv-energy-hour")
                                            .get_attribute("href") else None)
    link.click()
    done = wait_until(lambda: [p for p in console.downloads.iterdir() if p.suffix == ".csv"], 15, "the download")
    data = done[0].read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").splitlines()
    # the page is in English here (Chromium's Accept-Language): field names; the plant's code and name first
    assert lines[0] == "service_code,plant_name,period_start,period_end,sold_kwh,bought_kwh,slots,backfilled"
    assert len(lines) == 3  # two hours with energy today
    assert all(line.startswith(f"{console.codes[0]},発電所0,") for line in lines[1:])
    assert done[0].name.startswith(f"{console.codes[0]}-energy-hour-")


def test_the_realtime_chart_spans_the_day_with_a_single_sample(browser: Any, console: Console) -> None:
    """Right after midnight a plant has one sample: the chart still shows the whole JST day, 00:00–24:00,
    with the sample as a visible marker (not an axis zoomed into milliseconds)."""
    today = timeutil.now_jst().date()
    console.store.write_readings("gw-b0", power=[PowerReading(measured_at=timeutil.now_jst(), power_w=-1500)],
                                 energy=[])
    _login(browser, console)
    browser.get(f"{console.url}/plants/{console.codes[0]}")
    script = "const el = document.getElementById('chart-realtime'); return el.data ? " \
             "[el.layout.xaxis.range, el.data[0].y, el.data[0].mode] : null;"
    axis, values, mode = wait_until(lambda: (r := browser.execute_script(script)) and r[1] and r, 15,
                                    "the realtime chart with its sample")
    assert values == [1500]  # sold power drawn positive
    assert mode == "lines+markers"
    assert [str(x).replace(" ", "T")[:16] for x in axis] == [f"{today}T00:00", f"{today + timedelta(days=1)}T00:00"]
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-realtime .scatterlayer .point")


def test_from_the_plant_page_to_its_gateway_page_in_both_languages(browser: Any, console: Console) -> None:
    now = timeutil.now_jst()
    console.registry.record_heartbeat("gw-b0", {
        "gateway_id": "gw-b0", "at": now.isoformat(), "uptime_s": 93784.0, "firmware": "2.0.1",
        "module_family": "single-hop", "rssi_dbm": -70, "lqi": 150, "read_errors_total": 0, "outbox_depth": 4,
        "power_interval_s": 60.0, "heartbeat_interval_s": 30.0}, now, 60.0)
    console.registry.record_presence("gw-b0", "online", now - timedelta(minutes=3), "connected")
    console.registry.record_presence("gw-b0", "offline", now - timedelta(minutes=2), "connection lost")
    _login(browser, console)
    expected = {"ja": ["ゲートウェイ gw-b0", "発電所0", "2.0.1", "-70 dBm / 150", "1d 2h 03m", "接続履歴", "connection lost",
                       "切断", "割当中"],
                "en": ["Gateway gw-b0", "発電所0", "2.0.1", "-70 dBm / 150", "1d 2h 03m", "Online/offline history",
                       "connection lost", "Offline", "Still bound"]}
    for language in ("ja", "en"):
        browser.get(f"{console.url}/lang/{language}?back=/plants/{console.codes[0]}")
        link = WebDriverWait(browser, 10).until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#plant-gateways a")))
        assert link.text == "gw-b0"
        link.click()
        WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "gateway-facts")))
        assert browser.current_url == f"{console.url}/gateways/gw-b0"
        page = _text(browser)
        for text in expected[language]:
            assert text in page, (language, text)
        browser.find_element(By.CSS_SELECTOR, "#gateway-plant a").click()  # and back to its plant
        WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "plant-facts")))
    browser.get(console.url + "/gateways")
    assert {row.get_attribute("data-gateway") for row in browser.find_elements(By.CSS_SELECTOR, "#gateways tbody tr")} \
        == {"gw-b0", "gw-b1"}


def test_the_weather_chart_draws_no_axis_for_a_series_without_data(browser: Any, console: Console) -> None:
    """Clear-sky weather has no temperature: no °C axis. A provider's temperature brings it back."""
    start, _ = timeutil.today_bounds(timeutil.now_jst())
    code = console.codes[0]
    console.store.write_weather([Weather(service_code=code, observed_at=start + timedelta(hours=h), ghi_w_m2=100.0 * h,
                                         source="clear-sky", model="haurwitz") for h in (9, 10, 11)])
    _login(browser, console)
    script = "const el = document.getElementById('chart-weather'); return el.data && el.data.length ? " \
             "[el.data.map((t) => t.name), el.layout.yaxis2 === undefined] : null;"
    browser.get(f"{console.url}/plants/{code}")
    names, no_second_axis = wait_until(lambda: browser.execute_script(script), 15, "the weather chart")
    assert names == ["Global horizontal (GHI)"]
    assert no_second_axis
    console.store.write_weather([Weather(service_code=code, observed_at=start + timedelta(hours=12), ghi_w_m2=800.0,
                                         temperature_c=24.5, gti_w_m2=850.0, source="open-meteo", model="best_match")])
    browser.get(f"{console.url}/plants/{code}")
    names, no_second_axis = wait_until(
        lambda: (r := browser.execute_script(script)) and len(r[0]) > 1 and r, 15, "the weather chart with temperature")
    assert names == ["Global horizontal (GHI)", "Plane of array (GTI)", "Temperature (°C)"]
    assert not no_second_axis
