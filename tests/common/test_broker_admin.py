"""BrokerAdmin on real brokers: Mosquitto 2.0 with the dynamic-security plugin (pms_common.dynsec) and
the embedded amqtt broker of `pms up` (pms.embedded_broker), the same checks against both.

Every "never delivered" check listens with a login that reads every topic and ends on a sentinel
published after the refused message by the same client: once the sentinel arrives, the refused
message has been dealt with, so its absence means the broker dropped it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pms.embedded_broker import EmbeddedBroker, EmbeddedBrokerAdmin
from pms_common.broker_admin import BrokerAdminError, BrokerLogin
from pms_common.dynsec import DynsecBrokerAdmin
from tests.common.brokers_under_test import AdminedBroker, Probe
from tests.conftest import free_port, wait_until
from tests.dynsec_broker import DynsecBroker

pytestmark = pytest.mark.integration


@pytest.fixture(params=["dynsec", "embedded"])
def broker(request: pytest.FixtureRequest) -> Iterator[AdminedBroker]:
    if request.param == "embedded":
        yield from embedded_broker()
    else:
        mosquitto = DynsecBroker()
        try:
            mosquitto.start()
            yield AdminedBroker(name="dynsec", port=mosquitto.port, admin=DynsecBrokerAdmin(mosquitto.admin_address),
                                listener=mosquitto.admin, provisioning=mosquitto.provisioning, run=asyncio.run,
                                extra={"mosquitto": mosquitto})
        finally:
            mosquitto.remove()


def embedded_broker() -> Iterator[AdminedBroker]:
    """`pms up`'s amqtt broker on its own loop thread, as `pms up` runs it, with an EmbeddedBrokerAdmin."""
    port = free_port()
    listener = BrokerLogin(username="api", password="api-password-123")
    admin = EmbeddedBrokerAdmin({listener.username: listener.password})
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="embedded-broker", daemon=True)
    thread.start()

    def run(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(20)

    embedded = EmbeddedBroker("127.0.0.1", port, admin)
    try:
        run(embedded.start())
        provisioning = BrokerLogin(username="provision", password="provision-password-123")
        run(admin.ensure_provisioning_login(provisioning))
        yield AdminedBroker(name="embedded", port=port, admin=admin, listener=listener, provisioning=provisioning,
                            run=run)
    finally:
        run(embedded.stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    made: list[Probe] = []
    yield made
    for probe in made:
        probe.close()


def connect(broker: AdminedBroker, probes: list[Probe], login: BrokerLogin, client_id: str | None = None,
            subscribe: str | None = None) -> Probe:
    probe = Probe(broker.port, login, client_id)
    probes.append(probe)
    assert probe.connect(), f"{broker.name}: {login.username} could not connect"
    if subscribe:
        probe.subscribe(subscribe)
    return probe


def sentinel_through(publisher: Probe, topic: str, *listeners: Probe) -> None:
    """Publish a sentinel the publisher may send and wait until every listener has it."""
    payload = f"sentinel-{uuid.uuid4().hex[:6]}".encode()
    publisher.publish(topic, payload)
    for listener in listeners:
        wait_until(lambda listener=listener: (topic, payload) in listener.messages, 5, f"the sentinel on {topic}")


def test_a_gateway_login_publishes_and_subscribes_in_its_own_tree(broker: AdminedBroker, probes: list[Probe]) -> None:
    login = broker.run(broker.admin.create_gateway_login("gw-own-1"))
    assert login.username == "gw-own-1" and len(login.password) >= 24
    listener = connect(broker, probes, broker.listener, subscribe="#")
    gateway = connect(broker, probes, login, client_id="gw-own-1", subscribe="pms/v1/gw/gw-own-1/#")
    gateway.publish("pms/v1/gw/gw-own-1/status", b"online")
    for probe in (gateway, listener):
        wait_until(lambda probe=probe: ("pms/v1/gw/gw-own-1/status", b"online") in probe.messages, 5, "own status")


def test_a_publish_into_another_gateways_tree_is_never_delivered(broker: AdminedBroker, probes: list[Probe]) -> None:
    login_a = broker.run(broker.admin.create_gateway_login("gw-a"))
    login_b = broker.run(broker.admin.create_gateway_login("gw-b"))
    listener = connect(broker, probes, broker.listener, subscribe="#")
    gateway_b = connect(broker, probes, login_b, client_id="gw-b", subscribe="pms/v1/gw/gw-b/#")
    gateway_a = connect(broker, probes, login_a, client_id="gw-a", subscribe="pms/v1/gw/gw-a/#")
    gateway_a.subscribe("pms/v1/gw/gw-b/#")  # refused or never fed
    gateway_a.publish("pms/v1/gw/gw-b/cmd/req", b"forged")
    gateway_a.publish("pms/v1/gw/gw-b/readings", b"forged")
    gateway_a.publish("pms/v1/plants/pss00000001/weather", b"forged")
    gateway_b.publish("pms/v1/gw/gw-b/status", b"b-private")
    sentinel_through(gateway_a, "pms/v1/gw/gw-a/status", listener, gateway_a)
    sentinel_through(gateway_b, "pms/v1/gw/gw-b/heartbeat", listener, gateway_b)
    everything = listener.messages + gateway_a.messages + gateway_b.messages
    assert not [m for m in everything if m[1] == b"forged"]
    assert ("pms/v1/gw/gw-b/status", b"b-private") not in gateway_a.messages


def test_a_gateway_cannot_use_the_provisioning_tree_even_under_a_claim_client_id(
        broker: AdminedBroker, probes: list[Probe]) -> None:
    login = broker.run(broker.admin.create_gateway_login("gw-p"))
    listener = connect(broker, probes, broker.listener, subscribe="#")
    gateway = connect(broker, probes, login, client_id="claim-victim")
    gateway.publish("pms/v1/provision/claim-victim/claim", b"forged")
    gateway.publish("pms/v1/provision/claim-other/answer", b"forged")
    sentinel_through(gateway, "pms/v1/gw/gw-p/status", listener)
    assert not [m for m in listener.messages if m[1] == b"forged"]


def test_the_provisioning_login_may_use_only_its_own_client_ids_tree(broker: AdminedBroker, probes: list[Probe]) -> None:
    broker.run(broker.admin.ensure_provisioning_login(broker.provisioning))
    broker.run(broker.admin.ensure_provisioning_login(broker.provisioning))  # idempotent
    listener = connect(broker, probes, broker.listener, subscribe="#")
    claim_a = connect(broker, probes, broker.provisioning, client_id="claim-a", subscribe="pms/v1/provision/#")
    claim_b = connect(broker, probes, broker.provisioning, client_id="claim-b", subscribe="pms/v1/provision/claim-b/#")
    claim_a.subscribe("pms/v1/gw/#")
    claim_a.subscribe("pms/v1/provision/claim-a/#")  # in case the broad filter above was refused outright
    claim_a.publish("pms/v1/provision/claim-b/answer", b"forged")
    claim_a.publish("pms/v1/gw/gw-x/readings", b"forged")
    claim_b.publish("pms/v1/provision/claim-b/claim", b"b-secret-claim")
    sentinel_through(claim_b, "pms/v1/provision/claim-b/claim", listener, claim_b)
    sentinel_through(claim_a, "pms/v1/provision/claim-a/claim", listener, claim_a)
    assert not [m for m in listener.messages + claim_b.messages if m[1] == b"forged"]
    assert [m for m in claim_a.messages if not m[0].startswith("pms/v1/provision/claim-a/")] == []


def test_revoking_disconnects_the_gateway_within_5_s_and_it_cannot_come_back(
        broker: AdminedBroker, probes: list[Probe], capsys: pytest.CaptureFixture[str]) -> None:
    login = broker.run(broker.admin.create_gateway_login("gw-revoked"))
    gateway = connect(broker, probes, login, client_id="gw-revoked")
    assert "gw-revoked" in broker.run(broker.admin.gateway_logins())
    started = time.monotonic()
    broker.run(broker.admin.revoke_gateway_login("gw-revoked"))
    wait_until(lambda: gateway.disconnected_at is not None, 5, "the revoked gateway's disconnection", interval=0.02)
    assert gateway.disconnected_at is not None
    with capsys.disabled():
        print(f"\n[{broker.name}] revoked gateway disconnected {gateway.disconnected_at - started:.2f} s after the request")
    assert not Probe(broker.port, login, "gw-revoked").connect(timeout=3)
    broker.run(broker.admin.revoke_gateway_login("gw-revoked"))  # idempotent
    broker.run(broker.admin.revoke_gateway_login("gw-never-made"))
    assert "gw-revoked" not in broker.run(broker.admin.gateway_logins())


def test_rotation_kicks_the_old_session_refuses_the_old_password_and_accepts_the_new(
        broker: AdminedBroker, probes: list[Probe]) -> None:
    old = broker.run(broker.admin.create_gateway_login("gw-rot"))
    gateway = connect(broker, probes, old, client_id="gw-rot")
    new = broker.run(broker.admin.create_gateway_login("gw-rot"))
    assert new.username == old.username and new.password != old.password
    wait_until(lambda: gateway.disconnected_at is not None, 5, "the old session's disconnection", interval=0.02)
    assert not Probe(broker.port, old, "gw-rot").connect(timeout=3)
    listener = connect(broker, probes, broker.listener, subscribe="#")
    renewed = connect(broker, probes, new, client_id="gw-rot", subscribe="pms/v1/gw/gw-rot/#")
    sentinel_through(renewed, "pms/v1/gw/gw-rot/status", listener, renewed)
    assert broker.run(broker.admin.gateway_logins()) == {"gw-rot"}


def test_gateway_logins_lists_only_gateways(broker: AdminedBroker) -> None:
    for gateway_id in ("gw-1", "gw-2"):
        broker.run(broker.admin.create_gateway_login(gateway_id))
    broker.run(broker.admin.ensure_provisioning_login(broker.provisioning))
    assert broker.run(broker.admin.gateway_logins()) == {"gw-1", "gw-2"}


def test_a_bad_gateway_id_is_a_broker_admin_error_with_a_sentence(broker: AdminedBroker) -> None:
    for bad in ("ingest", "gw-a/b", "gw-#", ""):
        with pytest.raises(BrokerAdminError, match="is not a gateway id"):
            broker.run(broker.admin.create_gateway_login(bad))
    with pytest.raises(BrokerAdminError, match="is not a gateway id"):
        broker.run(broker.admin.revoke_gateway_login("gw-+"))


def test_admin_requests_are_counted_by_command_and_outcome(broker: AdminedBroker) -> None:
    command = "createClient" if broker.name == "dynsec" else "create_gateway_login"

    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("pms_broker_admin_requests_total",
                                         {"command": command, "outcome": outcome}) or 0.0

    before_ok, before_tolerated = count("ok"), count("tolerated")
    broker.run(broker.admin.create_gateway_login("gw-counted"))
    broker.run(broker.admin.create_gateway_login("gw-counted"))
    assert count("ok") == before_ok + (1 if broker.name == "dynsec" else 2)
    with pytest.raises(BrokerAdminError):
        broker.run(broker.admin.create_gateway_login("not-a-gateway"))
    if broker.name == "dynsec":
        assert count("tolerated") == before_tolerated + 1  # the second createClient found it existing
