"""The OpenAPI document's browsable UI in Debian's Chromium: /api/docs leads to Swagger UI served by
us under the Content-Security-Policy (its initialiser is a file, not an inline script), it lists the
API's endpoints, and no request of the page leaves 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from tests.browser.serving import served

pytestmark = pytest.mark.integration


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key="openapi-ui-admin-key"))
    try:
        with served(app) as base:
            yield base
    finally:
        app.config["store"].close()
        app.config["registry"].close()


def test_the_openapi_ui_loads_locally_and_lists_the_endpoints(browser: Any, url: str) -> None:
    browser.get(url + "/api/docs")
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path")))
    assert urlsplit(browser.current_url).path == "/openapi/swagger"
    paths = {el.get_attribute("data-path") for el in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/v1/events", "/api/v1/plants", "/api/v1/plants/{service_code}/energy", "/api/v1/notices"} <= paths
    assert len(paths) > 40
    assert browser.find_element(By.CSS_SELECTOR, ".info .title").text.startswith("PMS API")
    # Opening an operation shows its parameters (the UI's own scripts run under the CSP).
    events = browser.find_element(By.CSS_SELECTOR, '#operations-fleet-api_v1_list_events_events_get .opblock-summary')
    events.click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, '#operations-fleet-api_v1_list_events_events_get tr[data-param-name="service_code"]')))
    loaded = browser.execute_script(
        "return [location.href, ...performance.getEntriesByType('resource').map((e) => e.name)];")
    assert len(loaded) >= 5  # the page, its CSS, two bundles, the initialiser, the document
    assert {urlsplit(name).hostname for name in loaded if not name.startswith("data:")} == {"127.0.0.1"}, loaded
