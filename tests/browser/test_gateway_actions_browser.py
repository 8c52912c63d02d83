"""Gateway management from the console in Debian's Chromium, against a live fleet side: a real
Mosquitto with the dynamic-security plugin, device-manager on its production login (answering claims)
and a collector (simulated radio) that claimed its own identity with its serial and factory secret run
behind the console, so a pushed configuration is applied and reported back, and a command is
answered by the gateway itself.

The operator binds a gateway to a plant by the claim code on its label, pushes a configuration and
sees it in sync, runs a remote operation and sees its result, and finds both in the audit log: in
Japanese, then again in English."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.provisioned_run import run_provisioned
from pms_collector.settings import CollectorSettings
from pms_common import timeutil
from pms_common.dynsec import DynsecBrokerAdmin
from pms_common.health import Health
from pms_device_manager.service import DeviceManager
from pms_device_manager.settings import DeviceManagerSettings
from pms_registry import Registry
from pms_registry.provisioning import FactoryRow
from tests.browser.serving import served
from tests.conftest import wait_until
from tests.dynsec_broker import DynsecBroker

pytestmark = pytest.mark.integration

ADMIN_KEY = "fleet-browser-admin-key"
# Two gateways from the factory list: the first runs (a collector on the simulated radio), the second
# only gets bound (in the English pass).
GATEWAYS = [FactoryRow("SN-BR-1", "factory-secret-one-0123456789", "LABEL-0001"),
            FactoryRow("SN-BR-2", "factory-secret-two-0123456789", "LABEL-0002")]
RUNNING = "gw-sn-br-1"
NEWEST = "#gateway-commands tbody tr:first-child"


@dataclass
class Fleet:
    url: str
    registry: Registry
    codes: list[str]


def _run_fleet_side(broker: DynsecBroker, registry_url: str, workdir: Path, stop: threading.Event,
                    ready: threading.Event) -> None:
    """device-manager and one collector on their own event loop, as in production but in one thread."""

    async def main() -> None:
        stopping = asyncio.Event()
        registry = Registry(registry_url)
        manager = DeviceManager(DeviceManagerSettings(
            mqtt_url=broker.url(broker.services["device-manager"]), registry_url=registry_url,
            mqtt_client_id=f"dm-{uuid.uuid4().hex[:6]}", tick_s=0.5, control_poll_s=0.3, command_answer_grace_s=1.0,
            provisioning_username=broker.provisioning.username, provisioning_password=SecretStr(broker.provisioning.password)),
            registry, Health(), DynsecBrokerAdmin(broker.admin_address))
        # Fresh from the factory: its serial, its factory secret and the shared provisioning login only.
        settings = CollectorSettings(link="sim", mqtt_url=broker.url(broker.provisioning),
                                     gateway_serial=GATEWAYS[0].serial, factory_secret=SecretStr(GATEWAYS[0].factory_secret),
                                     credentials_path=workdir / "credentials.json", outbox_path=workdir / "outbox.db",
                                     backfill_days=0, heartbeat_interval_s=2, power_interval_s=5)

        def build(claimed: CollectorSettings, on_login_refused: Any) -> Gateway:
            return build_gateway(claimed, SimulatedModuleLink(claimed), Health(), on_login_refused=on_login_refused)

        tasks = [asyncio.create_task(manager.run(stopping)),
                 asyncio.create_task(run_provisioned(settings, stopping, build))]
        ready.set()
        await asyncio.to_thread(stop.wait)
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        registry.close()

    asyncio.run(main())


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dynsec_broker: DynsecBroker) -> Iterator[Fleet]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY", "PMS_CONSOLE_REFRESH_S"):
        monkeypatch.delenv(name, raising=False)
    registry_url = f"sqlite:///{tmp_path}/r.db"
    app = create_app(ApiSettings(registry_url=registry_url, tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN_KEY))
    registry: Registry = app.config["registry"]
    registry.ensure_customer("C00001", "デモ電力")
    now = timeutil.now_jst()
    codes = [registry.create_plant(customer_id="C00001", name=f"太陽光{i}号", address="茨城県つくば市",
                                   phone="029-000-0000", created_at=now, tariff_yen_per_kwh=16.0) for i in (1, 2)]
    registry.import_factory_gateways(GATEWAYS, now)
    stop, ready = threading.Event(), threading.Event()
    side = threading.Thread(target=_run_fleet_side, args=(dynsec_broker, registry_url, tmp_path, stop, ready),
                            daemon=True)
    side.start()
    assert ready.wait(30)
    try:
        with served(app) as url:
            yield Fleet(url, registry, codes)
    finally:
        stop.set()
        side.join(40)
        app.config["store"].close()
        registry.close()


WORDS = {
    "ja": {"bound": "ゲートウェイ {} を割り当てました", "online": "接続中", "pushed": "設定を配信しました",
           "in_sync": "反映済み", "queued": "操作を受け付けました", "succeeded": "成功", "read": "プロパティ読出",
           "audit_config": "設定配信", "audit_command": "リモート操作", "audit_bind": "発電所への割当"},
    "en": {"bound": "Gateway {} bound", "online": "Online", "pushed": "Configuration pushed",
           "in_sync": "In sync", "queued": "Command queued", "succeeded": "Succeeded", "read": "Read a property",
           "audit_config": "Config push", "audit_command": "Command", "audit_bind": "Bind to a plant"},
}


def _login(driver: Any, fleet: Fleet) -> None:
    driver.get(fleet.url + "/login")
    driver.find_element(By.ID, "username").send_keys("admin")
    driver.find_element(By.ID, "password").send_keys(ADMIN_KEY)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "management-status")))


def _bind(driver: Any, fleet: Fleet, code: str, claim_code: str, words: dict[str, str], gateway_id: str) -> None:
    driver.get(f"{fleet.url}/plants/{code}")
    driver.find_element(By.CSS_SELECTOR, "#bind-gateway summary").click()
    driver.find_element(By.ID, "claim_code").send_keys(claim_code)
    driver.find_element(By.ID, "bind-submit").click()
    WebDriverWait(driver, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"),
                                                                     words["bound"].format(gateway_id)))
    assert driver.find_element(By.CSS_SELECTOR, "#plant-gateways a").text == gateway_id


def _cell(driver: Any, selector: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, selector).text)


def test_bind_push_a_config_and_run_a_command_from_the_console_in_both_languages(browser: Any, fleet: Fleet) -> None:
    _login(browser, fleet)
    for language, power_s, plant, claim_code, gateway_id in (
            ("ja", "7", fleet.codes[0], "LABEL-0001", RUNNING), ("en", "11", fleet.codes[1], "label-0002",
                                                                  "gw-sn-br-2")):
        words = WORDS[language]
        browser.get(f"{fleet.url}/lang/{language}")
        _bind(browser, fleet, plant, claim_code, words, gateway_id)
        # The running gateway's page: online, then a config push and a remote operation.
        browser.get(f"{fleet.url}/gateways/{RUNNING}")
        wait_until(lambda w=words: (browser.refresh() or True) and w["online"] in _cell(browser, "#gateway-condition"),
                   30, "the gateway online")
        browser.find_element(By.ID, "power_interval_s").send_keys(power_s)
        Select(browser.find_element(By.ID, "log_level")).select_by_value("DEBUG")
        browser.find_element(By.ID, "push-config").click()
        WebDriverWait(browser, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"),
                                                                         words["pushed"]))
        # Applied and reported by the collector: the page turns "in sync" by itself, with the new interval.
        wait_until(lambda w=words: _cell(browser, "#config-drift") == w["in_sync"], 30, "the config in sync")
        assert _cell(browser, "#config-config_reported .power_interval_s") == power_s
        assert _cell(browser, "#config-config_reported .log_level") == "DEBUG"
        Select(browser.find_element(By.ID, "command")).select_by_value("read_property")
        epc = browser.find_element(By.ID, "epc")
        epc.clear()
        epc.send_keys("E7")
        browser.find_element(By.ID, "run-command").click()
        WebDriverWait(browser, 10).until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".flash"),
                                                                         words["queued"]))
        wait_until(lambda w=words: _cell(browser, f"{NEWEST} .state") == w["succeeded"], 30, "the command's result")
        assert words["read"] in _cell(browser, f"{NEWEST} td:nth-child(2)")
        assert '"epc":"E7"' in _cell(browser, f"{NEWEST} .result").replace(" ", "")
        assert '"value"' in _cell(browser, f"{NEWEST} .result")
        # Both, and the binding, in the audit log with who did them and how they ended.
        browser.get(f"{fleet.url}/audit")
        rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#audit-log tbody tr")]
        assert any(words["audit_command"] in r and "succeeded" in r and "user:admin" in r for r in rows), rows
        assert any(words["audit_config"] in r and "applied" in r for r in rows), rows
        assert any(words["audit_bind"] in r and gateway_id in r for r in rows), rows
    # The running gateway is on the identity it claimed: a login of its own at the broker, still active.
    login = fleet.registry.broker_login(RUNNING)
    assert login is not None and login.state == "active"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
