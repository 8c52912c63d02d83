"""The cross-plant list with 10,000 plants in Debian's headless Chromium: a search narrows the table within
a second, sorting and paging are answered by the server and kept in the URL, the refresh updates a row
without a reload, and the graph view pages 500 plants' sparklines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_common.messages import PowerReading
from pms_registry import Registry
from pms_store import TimeSeriesStore
from tests.browser.serving import log_in_as_admin, served
from tests.conftest import PINNED_NOON, wait_until
from tests.fleet_fill import fill_registry, fill_store, gateway_of

pytestmark = pytest.mark.integration

ADMIN_KEY = "fleet-list-admin-key"
PLANTS = 10_000
CUSTOMERS = 20  # so each customer has 500 plants
REFRESH_S = 2.0


@dataclass
class Fleet:
    url: str
    registry: Registry
    store: TimeSeriesStore
    codes: list[str]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One fleet for the module's tests (filling it is most of their time), the clock pinned to a JST
    noon as tests/conftest.pinned_clock pins it, so that "today" has half a day of readings."""
    tmp_path = tmp_path_factory.mktemp("fleet")
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_CONSOLE_REFRESH_S"):
            patch.delenv(name, raising=False)
        patch.setattr(timeutil, "now_jst", lambda: PINNED_NOON + timedelta(seconds=time.monotonic() - started))
        app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db",
                                     tsdb_url=f"sqlite:///{tmp_path}/ts.db", admin_api_key=ADMIN_KEY,
                                     console_refresh_s=REFRESH_S))
        registry, store = app.config["registry"], app.config["store"]
        now = timeutil.now_jst()
        codes = fill_registry(registry, PLANTS, now, customers=CUSTOMERS)
        # A day of readings for customer C0000's 500 plants (plant n belongs to customer n % 20).
        fill_store(store, list(range(0, PLANTS, CUSTOMERS)), now, power_every_min=10)
        with served(app) as url:
            yield Fleet(url, registry, store, codes)
        store.close()
        registry.close()


def _rows(driver: Any) -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, "#plants tbody tr[data-code]"))


def _column(driver: Any, selector: str) -> list[str]:
    """One column's texts, read in one script call (the refresh may replace the rows between two reads)."""
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll('#plants tbody tr[data-code]'),"
        " (tr) => selector === 'code' ? tr.dataset.code : tr.querySelector(selector).textContent);"
        .replace("selector", "arguments[0]"), selector))


def _range(driver: Any) -> tuple[int, int, int]:
    found = driver.find_element(By.ID, "page-range")
    return (int(found.get_attribute("data-first")), int(found.get_attribute("data-last")),
            int(found.get_attribute("data-total")))


def _open(driver: Any, fleet: Fleet, path: str) -> None:
    log_in_as_admin(driver, fleet.url, ADMIN_KEY)
    driver.get(f"{fleet.url}/lang/ja?back=/")
    driver.get(fleet.url + path)


def test_typing_a_search_narrows_10000_plants_within_a_second(browser: Any, fleet: Fleet) -> None:
    _open(browser, fleet, "/sales")
    assert len(_rows(browser)) == 100
    assert _range(browser) == (1, 100, PLANTS)
    box = browser.find_element(By.ID, "plant-search")
    box.send_keys("第4321発電所")
    typed = time.monotonic()
    while time.monotonic() - typed < 1.0:  # polled closely: the time is the assertion
        rows = _rows(browser)
        if len(rows) == 1 and "第4321発電所" in rows[0].text:
            break
        time.sleep(0.02)
    narrowed_s = time.monotonic() - typed
    assert len(_rows(browser)) == 1, f"the table was not narrowed within 1 s ({narrowed_s:.2f} s)"
    print(f"search narrowed 10,000 plants to 1 in {narrowed_s * 1000:.0f} ms after typing (250 ms of it debounce)")
    assert _column(browser, "code") == [fleet.codes[4321]]
    assert "q=" in browser.current_url
    # The URL keeps the search: a reload shows the same (rendered by the server this time).
    browser.refresh()
    assert browser.find_element(By.ID, "plant-search").get_attribute("value") == "第4321発電所"
    assert _column(browser, "code") == [fleet.codes[4321]]
    # A broader search pages: 大阪 is in an eighth of the names.
    box = browser.find_element(By.ID, "plant-search")
    box.clear()
    box.send_keys("大阪")
    wait_until(lambda: _range(browser)[2] == PLANTS // 8, 5, "the broad search's total")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_sorting_paging_and_the_refresh_keep_the_page(browser: Any, fleet: Fleet) -> None:
    _open(browser, fleet, "/sales")
    browser.execute_script("window.notReloaded = true;")
    browser.find_element(By.CSS_SELECTOR, 'button.sort[data-sort="current_sold_w"]').click()
    wait_until(lambda: "sort=current_sold_w" in browser.current_url and "order=desc" in browser.current_url, 5,
               "the sort in the URL")

    def sold() -> list[int | None]:
        cells = _column(browser, ".sold-w")
        return [None if c == "未計測" else int(c.replace(",", "").removesuffix(" W")) for c in cells]

    header = browser.find_element(By.CSS_SELECTOR, 'th[data-sort="current_sold_w"]')
    wait_until(lambda: "sorted-desc" in header.get_attribute("class"), 5, "the sorted page")  # marked once shown
    values = sold()
    assert all(v is not None for v in values), values  # 500 measured plants fill the first page
    assert values == sorted(values, reverse=True)  # type: ignore[type-var]
    # Back to the code order, then the second page.
    browser.find_element(By.CSS_SELECTOR, 'button.sort[data-sort="service_code"]').click()
    wait_until(lambda: _column(browser, "code")[0] == fleet.codes[0], 5, "the code order")
    browser.find_element(By.ID, "page-next").click()
    wait_until(lambda: _range(browser) == (101, 200, PLANTS), 5, "the second page")
    assert "offset=100" in browser.current_url
    assert _column(browser, "code")[:2] == fleet.codes[100:102]
    code = fleet.codes[101]
    assert _column(browser, ".sold-w")[1] == "未計測"  # plant 101 (customer C0001) has no readings
    # A reading arrives for a plant on this page: the next refresh shows it, in place.
    fleet.store.write_readings(gateway_of(101), power=[PowerReading(measured_at=timeutil.now_jst(), power_w=-98765)],
                               energy=[])
    cell = f'tr[data-code="{code}"] .sold-w'
    wait_until(lambda: browser.find_element(By.CSS_SELECTOR, cell).text == "98,765 W", REFRESH_S * 4,
               "the refresh to show the new reading")
    assert browser.execute_script("return window.notReloaded === true;")
    assert _range(browser) == (101, 200, PLANTS)  # still the second page
    # A reload keeps the page the URL names.
    browser.refresh()
    assert _range(browser) == (101, 200, PLANTS)


def test_the_graph_view_pages_sparklines_of_500_plants(browser: Any, fleet: Fleet) -> None:
    _open(browser, fleet, "/sales/graph?customer_id=C0000&sort=today_sold_kwh&order=desc")
    assert _range(browser) == (1, 50, 500)

    def lines_drawn() -> bool:
        return bool(browser.execute_script(
            "const rows = document.querySelectorAll('#plants tbody tr[data-code]');"
            "return rows.length === 50 && Array.from(rows).every((tr) => tr.querySelector('td.spark svg polyline'));"))

    wait_until(lines_drawn, 10, "a sparkline in every row")
    first_page = _column(browser, "code")
    browser.find_element(By.ID, "page-next").click()
    wait_until(lambda: _range(browser) == (51, 100, 500), 5, "the second page")
    wait_until(lines_drawn, 10, "the second page's sparklines")
    assert not set(first_page) & set(_column(browser, "code"))
    # Today's kWh, largest first.
    kwh = [float(text.removesuffix(" kWh").replace(",", "")) for text in _column(browser, ".today-kwh")]
    assert kwh == sorted(kwh, reverse=True)
    browser.find_element(By.ID, "tab-list").click()
    assert "/sales" in browser.current_url


def test_the_home_screen_refreshes_itself(browser: Any, fleet: Fleet) -> None:
    _open(browser, fleet, "/")
    browser.execute_script("window.notReloaded = true;")
    abnormal = int(browser.find_element(By.ID, "gw-abnormal").text.replace(",", ""))
    assert abnormal == PLANTS // 50  # every 50th gateway is offline
    assert browser.find_element(By.ID, "plant-count").text == str(PLANTS)
    now = timeutil.now_jst()
    fleet.registry.record_gateway_status(gateway_of(0), "offline", now)
    fleet.registry.record_info_event(kind="billing_start_decided", at=now, service_code=fleet.codes[0],
                                     message=f"billing start date of {fleet.codes[0]} decided",
                                     params={"day": now.date().isoformat()})
    fleet.registry.create_notice(kind="maintenance", title="定期メンテナンス", body="本日22時から", created_at=now,
                                 starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=2))
    wait_until(lambda: browser.find_element(By.ID, "gw-abnormal").text == f"{abnormal + 1:,}", REFRESH_S * 5,
               "the count of offline gateways to refresh")
    wait_until(lambda: "定期メンテナンス" in browser.find_element(By.ID, "notices").text, REFRESH_S * 3, "the notice")
    first_event = browser.find_element(By.CSS_SELECTOR, "#events tbody tr")
    assert fleet.codes[0] in first_event.text
    assert "お知らせ" in first_event.find_element(By.CSS_SELECTOR, ".event-phase").text  # the phase in Japanese
    assert browser.execute_script("return window.notReloaded === true;")
