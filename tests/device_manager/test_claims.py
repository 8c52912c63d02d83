"""Device-manager's claim handler and revocation executor, over the real Mosquitto and a real SQLite registry.

The broker-administration side is `MemoryBrokerAdmin` here (it keeps logins in a dict): the tests on
the real dynamic-security broker are in tests/integration/test_claims_dynsec.py.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from pms_common import timeutil, topics
from pms_common.broker_admin import BrokerAdminError, BrokerLogin
from pms_common.mqtt import BrokerAddress
from pms_common.provisioning import ClaimAnswer, make_claim, open_answer
from pms_device_manager.claims import ClaimHandler, ClaimLimits, ClaimService, RevocationExecutor, TokenBucket
from pms_registry import Registry
from pms_registry.provisioning import FactoryRow

SECRET = "factory-secret-of-sn-0001"


class MemoryBrokerAdmin:
    """The BrokerAdmin interface over a dict: what a login would be, without a broker behind it."""

    def __init__(self) -> None:
        self.logins: dict[str, BrokerLogin] = {}
        self.fail_next = False

    async def ensure_provisioning_login(self, login: BrokerLogin) -> None:
        self.logins[login.username] = login

    async def create_gateway_login(self, gateway_id: str) -> BrokerLogin:
        login = BrokerLogin(username=gateway_id, password=uuid.uuid4().hex)
        self.logins[gateway_id] = login
        return login

    async def revoke_gateway_login(self, gateway_id: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise BrokerAdminError("the broker did not answer")
        self.logins.pop(gateway_id, None)

    async def gateway_logins(self) -> set[str]:
        return {name for name in self.logins if name.startswith("gw-")}


@pytest.fixture
def registry(tmp_path: Path, noon: datetime) -> Registry:
    found = Registry(f"sqlite:///{tmp_path}/r.db")
    found.migrate()
    found.import_factory_gateways([FactoryRow("SN-0001", SECRET, "CODE-0001"),
                                   FactoryRow("SN-0002", "factory-secret-of-sn-0002", "CODE-0002")], noon)
    return found


def limits(**overrides: float) -> ClaimLimits:
    values = {"per_serial_rate_s": 0.1, "per_serial_burst": 3, "total_rate_s": 100, "total_burst": 100} | overrides
    return ClaimLimits(**values)  # type: ignore[arg-type]


def test_token_buckets_refill_at_their_rate() -> None:
    bucket = TokenBucket(rate_per_s=2, burst=2)
    assert [bucket.take(0.0), bucket.take(0.0), bucket.take(0.0)] == [True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.6)
    clock = [0.0]
    fleet = ClaimLimits(per_serial_rate_s=1, per_serial_burst=1, total_rate_s=1, total_burst=2,
                        monotonic=lambda: clock[0])
    assert [fleet.check("a"), fleet.check("a"), fleet.check("b"), fleet.check("c")] == [None, "serial", None, "overall"]
    clock[0] = 1.0
    assert fleet.check("a") is None


def test_an_accepted_claim_makes_a_login_and_registers_the_gateway(registry: Registry) -> None:
    admin = MemoryBrokerAdmin()
    handler = ClaimHandler(registry, admin, limits(), gateway_mqtt_url="mqtt://broker.example:1883")
    now = timeutil.now_jst()
    claim = make_claim("SN-0001", SECRET, now, firmware="fw/1")
    answer = asyncio.run(handler.handle("claim-sn-0001", claim.to_json(), now))
    assert answer.ok and answer.nonce == claim.nonce
    credentials = open_answer(answer, claim, SECRET)
    assert credentials.gateway_id == "gw-sn-0001" and admin.logins["gw-sn-0001"].password == credentials.password
    assert credentials.mqtt_url == "mqtt://broker.example:1883"
    # The issued password is what the API checks an image download's Basic auth against.
    assert credentials.username == credentials.gateway_id
    assert registry.gateway_password_matches("gw-sn-0001", credentials.password)
    assert not registry.gateway_password_matches("gw-sn-0001", credentials.password + "x")
    assert [gw.gateway_id for gw in registry.list_gateways()] == ["gw-sn-0001"]
    assert [e.kind for e in registry.list_events()] == ["gateway_claimed"]
    assert registry.list_events()[0].params == {"gateway_id": "gw-sn-0001", "serial": "SN-0001",
                                                "firmware": claim.firmware, "rotated": False}
    # Claiming again rotates the login: the new password replaces the old.
    again = make_claim("SN-0001", SECRET, now + timedelta(seconds=1))
    rotated = open_answer(asyncio.run(handler.handle("claim-sn-0001", again.to_json(), now)), again, SECRET)
    assert rotated.password != credentials.password
    assert admin.logins["gw-sn-0001"].password == rotated.password
    assert registry.gateway_password_matches("gw-sn-0001", rotated.password)
    assert not registry.gateway_password_matches("gw-sn-0001", credentials.password)
    assert "rotated" in registry.list_events()[0].message


def test_refusals_carry_a_reason_are_counted_and_logged(registry: Registry) -> None:
    admin = MemoryBrokerAdmin()
    handler = ClaimHandler(registry, admin, limits(per_serial_burst=10))
    now = timeutil.now_jst()

    def refused(client_id: str, payload: bytes) -> ClaimAnswer:
        answer = asyncio.run(handler.handle(client_id, payload, now))
        assert not answer.ok and answer.sealed is None and answer.detail
        return answer

    good = make_claim("SN-0001", SECRET, now)
    assert refused("claim-sn-0009", make_claim("SN-0009", SECRET, now).to_json()).reason == "unknown_serial"
    assert refused("claim-sn-0001", make_claim("SN-0001", "wrong secret", now).to_json()).reason == "bad_proof"
    assert refused("claim-sn-0001", make_claim("SN-0001", SECRET, now - timedelta(minutes=6)).to_json()).reason \
        == "stale"
    assert refused("claim-sn-0002", good.to_json()).reason == "client_id_mismatch"
    assert refused("claim-sn-0001", b"{not json").reason == "bad_claim"
    assert asyncio.run(handler.handle("claim-sn-0001", good.to_json(), now)).ok
    assert refused("claim-sn-0001", good.to_json()).reason == "replayed"
    registry.block_factory_gateway("SN-0002", "decommissioned")
    blocked = refused("claim-sn-0002", make_claim("SN-0002", "factory-secret-of-sn-0002", now).to_json())
    assert (blocked.reason, blocked.detail) == ("blocked", "serial SN-0002 may not claim: decommissioned")
    assert list(admin.logins) == ["gw-sn-0001"]
    refusals = [e for e in registry.list_events() if e.kind == "claim_refused"]
    assert len(refusals) == 7 and all("claim refused (" in e.message for e in refusals)
    assert refusals[0].params == {"reason": "blocked", "detail": "serial SN-0002 may not claim: decommissioned"}


def refusals_counted(reason: str) -> float:
    return REGISTRY.get_sample_value("pms_device_manager_claims_total", {"outcome": reason}) or 0.0


def test_a_claim_flood_is_refused_and_logged_once(registry: Registry) -> None:
    handler = ClaimHandler(registry, MemoryBrokerAdmin(), limits(per_serial_burst=2))
    now = timeutil.now_jst()
    counted = refusals_counted("rate_limited")
    answers = [asyncio.run(handler.handle("claim-sn-0001", make_claim("SN-0001", SECRET, now).to_json(), now))
               for _ in range(10)]
    assert [a.ok for a in answers] == [True, True] + [False] * 8
    assert {a.reason for a in answers[2:]} == {"rate_limited"}
    assert len([e for e in registry.list_events() if e.kind == "claim_refused"]) == 1
    assert refusals_counted("rate_limited") - counted == 8


def test_a_gateway_retrying_a_refused_claim_is_logged_once_per_reason_and_counted_every_time(
        registry: Registry, caplog: pytest.LogCaptureFixture) -> None:
    """A gateway with a wrong secret retrying every 2 s for ten minutes, just past its serial's rate
    (one claim in 10 s): 300 refusals, alternately bad_proof and rate_limited. Each is counted; the log
    and the event log say each reason once (again after REFUSAL_RELOG_S, and afresh after an accepted claim)."""
    clock = [0.0]
    handler = ClaimHandler(registry, MemoryBrokerAdmin(), limits(monotonic=lambda: clock[0]))
    counted = {reason: refusals_counted(reason) for reason in ("bad_proof", "rate_limited")}
    now = timeutil.now_jst()
    caplog.set_level(logging.WARNING, "pms_device_manager.claims")
    reasons = []
    for attempt in range(300):
        clock[0] = attempt * 2.0
        claim = make_claim("SN-0001", "not the factory secret", now + timedelta(seconds=clock[0]))
        answer = asyncio.run(handler.handle("claim-sn-0001", claim.to_json(), now + timedelta(seconds=clock[0])))
        reasons.append(answer.reason)
    assert set(reasons) == {"bad_proof", "rate_limited"} and reasons[:4] == ["bad_proof"] * 3 + ["rate_limited"]
    assert {r: refusals_counted(r) - counted[r] for r in counted} == {r: reasons.count(r) for r in counted}
    events = [e for e in registry.list_events() if e.kind == "claim_refused"]
    assert sorted(e.params["reason"] for e in events) == ["bad_proof", "rate_limited"]
    assert len([r for r in caplog.records if "refused a claim" in r.getMessage()]) == 2
    # An hour on, still at it: logged again, with how many refusals went unlogged meanwhile.
    clock[0] = 3600.0 + 600
    late = make_claim("SN-0001", "not the factory secret", now + timedelta(hours=1))
    assert asyncio.run(handler.handle("claim-sn-0001", late.to_json(), now + timedelta(hours=1))).reason == "bad_proof"
    latest = registry.list_events()[0]
    assert (latest.params["reason"], f"{reasons.count('bad_proof') - 1} more times" in latest.message) == (
        "bad_proof", True)
    # Once accepted, a later refusal of the serial is a new episode, logged at once.
    clock[0] += 20
    assert asyncio.run(handler.handle("claim-sn-0001", make_claim("SN-0001", SECRET, now).to_json(), now)).ok
    clock[0] += 20
    wrong = make_claim("SN-0001", "not the factory secret", now)
    assert asyncio.run(handler.handle("claim-sn-0001", wrong.to_json(), now)).reason == "bad_proof"
    assert len([e for e in registry.list_events() if e.kind == "claim_refused"]) == 4


@pytest.mark.integration
def test_claims_are_answered_over_mqtt_and_revocations_carried_out(registry: Registry, mosquitto: str) -> None:
    admin = MemoryBrokerAdmin()
    run = uuid.uuid4().hex[:8]
    service = ClaimService(ClaimHandler(registry, admin, limits()), BrokerAddress.parse(mosquitto), f"dm-{run}")
    executor = RevocationExecutor(registry, admin, poll_s=0.1)

    async def scenario() -> None:
        await asyncio.wait_for(service.subscribed.wait(), 10)
        claim = make_claim("SN-0001", SECRET, timeutil.now_jst())
        async with BrokerAddress.parse(mosquitto).client(identifier=f"claim-sn-0001-{run}") as gateway:
            await gateway.subscribe(topics.provision_answer(claim.client_id), qos=1)
            await gateway.publish(topics.provision_claim(claim.client_id), claim.to_json(), qos=1)
            message = await asyncio.wait_for(anext(aiter(gateway.messages)), 10)
        answer = ClaimAnswer.model_validate_json(message.payload)  # type: ignore[arg-type]
        assert open_answer(answer, claim, SECRET).gateway_id == "gw-sn-0001"
        admin.fail_next = True
        registry.request_revocation("gw-sn-0001", "unbound", timeutil.now_jst())
        for _ in range(50):
            await asyncio.sleep(0.1)
            if not registry.pending_revocations():
                break
        assert "gw-sn-0001" not in admin.logins  # the failed attempt was tried again
        login = registry.broker_login("gw-sn-0001")
        assert login is not None and login.state == "revoked"

    async def main() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(service.run(stop)), asyncio.create_task(executor.run(stop))]
        try:
            await asyncio.wait_for(scenario(), 30)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)

    asyncio.run(main())
