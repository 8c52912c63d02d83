"""The collector's first-boot claim: the credentials file, the identity it gives, and claiming over Mosquitto
against device-manager's real claim service (its broker side in memory: tests/device_manager/test_claims.py)."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from pms_collector.claim import as_itself, claim_identity, load_credentials, provisioned, save_credentials
from pms_collector.settings import CollectorSettings
from pms_common.broker_admin import BrokerAdminError, BrokerLogin
from pms_common.mqtt import BrokerAddress
from pms_common.provisioning import ClaimCredentials
from pms_device_manager.claims import ClaimHandler, ClaimLimits, ClaimService
from pms_registry import Registry
from pms_registry.provisioning import FactoryRow
from tests.device_manager.test_claims import MemoryBrokerAdmin

CREDENTIALS = ClaimCredentials(gateway_id="gw-sn-0001", username="gw-sn-0001", password="p@ss/word:1")


def settings(tmp_path: Path, url: str = "mqtt://pms-provisioning:prov-pass@127.0.0.1:1883",
             **overrides: object) -> CollectorSettings:
    values: dict[str, object] = {"link": "sim", "mqtt_url": url, "gateway_serial": "SN-0001",
                                 "factory_secret": SecretStr("factory-secret-of-sn-0001"),
                                 "credentials_path": tmp_path / "var" / "credentials.json"} | overrides
    return CollectorSettings(**values)  # type: ignore[arg-type]


def test_the_credentials_file_is_written_whole_and_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "credentials.json"
    save_credentials(path, CREDENTIALS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"gateway_id": "gw-sn-0001", "username": "gw-sn-0001",
                                            "password": "p@ss/word:1"}
    assert load_credentials(path) == CREDENTIALS
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temporary left behind
    path.write_text("{broken")
    assert load_credentials(path) is None
    assert load_credentials(tmp_path / "none.json") is None


def test_the_claimed_identity_replaces_gateway_id_and_login(tmp_path: Path) -> None:
    mine = as_itself(settings(tmp_path), CREDENTIALS)
    assert mine.gateway_id == "gw-sn-0001"
    address = BrokerAddress.parse(mine.mqtt_url)
    assert (address.username, address.password, address.host, address.port) == \
        ("gw-sn-0001", "p@ss/word:1", "127.0.0.1", 1883)
    moved = as_itself(settings(tmp_path), CREDENTIALS.model_copy(update={"mqtt_url": "mqtts://cloud.example:8883"}))
    assert BrokerAddress.parse(moved.mqtt_url).tls and "cloud.example" in moved.mqtt_url


def test_a_kept_identity_is_used_without_claiming(tmp_path: Path) -> None:
    configured = settings(tmp_path, url="mqtt://prov:x@127.0.0.1:1")  # nothing listens on port 1
    save_credentials(configured.credentials_path, CREDENTIALS)
    found = asyncio.run(provisioned(configured, asyncio.Event()))
    assert found is not None and found.gateway_id == "gw-sn-0001"
    plain = CollectorSettings(link="sim", gateway_id="gw-plain")
    assert asyncio.run(provisioned(plain, asyncio.Event())) is plain


def test_serial_and_secret_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        settings(tmp_path, factory_secret=None)


@pytest.mark.integration
def test_a_refused_claim_is_retried_and_an_accepted_one_kept(tmp_path: Path, mosquitto: str, noon: datetime) -> None:
    run = uuid.uuid4().hex[:6]
    serial = f"SN-{run}"
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    service = ClaimService(ClaimHandler(registry, MemoryBrokerAdmin(), ClaimLimits(1, 5, 100, 100)),
                           BrokerAddress.parse(mosquitto), f"dm-{run}")
    configured = settings(tmp_path, url=mosquitto, gateway_serial=serial, claim_refused_retry_s=0.5,
                          claim_timeout_s=5)

    async def main() -> ClaimCredentials | None:
        stop = asyncio.Event()
        serving = asyncio.create_task(service.run(stop))
        try:
            await asyncio.wait_for(service.subscribed.wait(), 10)
            claiming = asyncio.create_task(claim_identity(configured, stop))
            await asyncio.sleep(1.0)  # refused at least once: the serial is not imported yet
            assert not claiming.done()
            registry.import_factory_gateways([FactoryRow(serial, "factory-secret-of-sn-0001", f"C-{run}")], noon)
            return await asyncio.wait_for(claiming, 20)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 10)

    granted = asyncio.run(main())
    assert granted is not None and granted.gateway_id == f"gw-sn-{run}"
    assert load_credentials(configured.credentials_path) == granted
    assert [e.kind for e in registry.list_events()][-1] == "claim_refused"
    assert registry.list_events()[0].kind == "gateway_claimed"


class FlakyBrokerAdmin(MemoryBrokerAdmin):
    """A broker admin whose first login fails: device-manager answers the claim "unavailable"."""

    def __init__(self) -> None:
        super().__init__()
        self.failures_left = 1

    async def create_gateway_login(self, gateway_id: str) -> BrokerLogin:
        if self.failures_left:
            self.failures_left -= 1
            raise BrokerAdminError("the broker did not answer")
        return await super().create_gateway_login(gateway_id)


def test_an_unavailable_cloud_is_claimed_again_after_the_backoff_not_the_refusal_wait(
        tmp_path: Path, mosquitto: str, noon: datetime) -> None:
    """"unavailable" is the cloud's passing fault, not a verdict on the gateway: the claim comes again
    within the backoff (2 s, jittered), not after claim_refused_retry_s (300 s by default)."""
    run = uuid.uuid4().hex[:6]
    serial = f"SN-{run}"
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    registry.import_factory_gateways([FactoryRow(serial, "factory-secret-of-sn-0001", f"C-{run}")], noon)
    admin = FlakyBrokerAdmin()
    service = ClaimService(ClaimHandler(registry, admin, ClaimLimits(1, 5, 100, 100)),
                           BrokerAddress.parse(mosquitto), f"dm-{run}")
    configured = settings(tmp_path, url=mosquitto, gateway_serial=serial, claim_timeout_s=5)
    assert configured.claim_refused_retry_s == 300

    async def main() -> ClaimCredentials | None:
        stop = asyncio.Event()
        serving = asyncio.create_task(service.run(stop))
        try:
            await asyncio.wait_for(service.subscribed.wait(), 10)
            return await asyncio.wait_for(claim_identity(configured, stop), 30)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 10)

    granted = asyncio.run(main())
    assert admin.failures_left == 0, "the first claim was not refused as unavailable"
    assert granted is not None and granted.gateway_id == f"gw-sn-{run}"
    assert admin.logins[granted.gateway_id].password == granted.password
