"""What only the dynamic-security implementation has: its command channel, its errors and the service
logins, on a real Mosquitto 2.0 (the `dynsec_broker` fixture of tests/conftest.py). The BrokerAdmin
behaviour shared with the embedded broker is in test_broker_admin.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from pms_common.broker_admin import BrokerAdminError, BrokerLogin
from pms_common.dynsec import DynsecBrokerAdmin, confined_acls, gateway_acls
from pms_common.mqtt import BrokerAddress
from tests.common.brokers_under_test import Probe
from tests.conftest import free_port, wait_until
from tests.dynsec_broker import DynsecBroker

pytestmark = pytest.mark.integration


def test_gateway_role_grants_its_tree_and_ends_in_denies() -> None:
    acls = gateway_acls("gw-9")
    allowed = {(a["acltype"], a["topic"]) for a in acls if a["allow"]}
    assert allowed == {(kind, "pms/v1/gw/gw-9/#")
                       for kind in ("publishClientSend", "subscribePattern", "publishClientReceive")}
    denies = [a for a in acls if not a["allow"]]
    assert {a["topic"] for a in denies} == {"#"}
    assert all(d["priority"] < a["priority"] for d in denies for a in acls if a["allow"])


def test_a_refused_command_names_the_command_and_the_brokers_words(dynsec_broker: DynsecBroker) -> None:
    admin = DynsecBrokerAdmin(dynsec_broker.admin_address)
    with pytest.raises(BrokerAdminError, match=r"refused addClientRole \(username='nobody'\): Client not found"):
        asyncio.run(admin.request({"command": "addClientRole", "username": "nobody", "rolename": "x"}))


def test_a_login_without_admin_rights_gets_a_timeout_error_naming_the_command(dynsec_broker: DynsecBroker) -> None:
    not_admin = DynsecBrokerAdmin(dynsec_broker.address(dynsec_broker.services["api"]), timeout_s=1)
    started = time.monotonic()
    with pytest.raises(BrokerAdminError, match=r"did not answer the dynamic-security command\(s\) listClients within 1 s"):
        asyncio.run(not_admin.gateway_logins())
    assert time.monotonic() - started < 3


def test_an_unreachable_broker_is_a_broker_admin_error() -> None:
    nowhere = DynsecBrokerAdmin(BrokerAddress(host="127.0.0.1", port=free_port(), username="admin", password="x"))
    with pytest.raises(BrokerAdminError, match="could not be sent to the broker"):
        asyncio.run(nowhere.gateway_logins())


def test_the_provisioning_login_must_not_be_a_dynsec_client(dynsec_broker: DynsecBroker) -> None:
    admin = DynsecBrokerAdmin(dynsec_broker.admin_address)
    asyncio.run(admin.request({"command": "createClient", "username": "shadow", "password": "shadow-password"}))
    with pytest.raises(BrokerAdminError, match="cannot confine to its own client id"):
        asyncio.run(admin.ensure_provisioning_login(BrokerLogin(username="shadow", password="shadow-password")))


def test_a_wrong_provisioning_password_is_a_broker_admin_error(dynsec_broker: DynsecBroker) -> None:
    wrong = BrokerLogin(username=dynsec_broker.provisioning.username, password="not-the-password")
    with pytest.raises(BrokerAdminError, match="refuses the provisioning login 'provision'"):
        asyncio.run(DynsecBrokerAdmin(dynsec_broker.admin_address).ensure_provisioning_login(wrong))


def test_ensure_role_replaces_stale_acls(dynsec_broker: DynsecBroker) -> None:
    admin = DynsecBrokerAdmin(dynsec_broker.admin_address)
    asyncio.run(admin.ensure_role("r", confined_acls(send=["old/#"])))
    asyncio.run(admin.ensure_role("r", confined_acls(send=["new/#"])))
    role = asyncio.run(admin.request({"command": "getRole", "rolename": "r"}))[0]["data"]["role"]
    topics = {a["topic"] for a in role["acls"] if a["allow"]}
    assert topics == {"new/#"}


def test_service_logins_keep_the_rights_of_the_acl_file(dynsec_broker: DynsecBroker) -> None:
    services = dynsec_broker.services
    probes: list[Probe] = []
    try:
        def connect(login: BrokerLogin, subscribe: str | None = None) -> Probe:
            probe = Probe(dynsec_broker.port, login)
            probes.append(probe)
            assert probe.connect(), login.username
            if subscribe:
                probe.subscribe(subscribe)
            return probe

        listener = connect(dynsec_broker.admin, "#")
        ingest = connect(services["ingest"], "pms/v1/gw/+/readings")
        api = connect(services["api"], "pms/v1/#")
        device_manager = connect(services["device-manager"], "pms/v1/provision/+/claim")
        sim_gateway = asyncio.run(DynsecBrokerAdmin(dynsec_broker.admin_address).create_gateway_login("gw-s"))
        gateway = connect(sim_gateway)
        claimer = Probe(dynsec_broker.port, dynsec_broker.provisioning, "claim-s1")
        probes.append(claimer)
        assert claimer.connect()

        gateway.publish("pms/v1/gw/gw-s/readings", b"r1")
        claimer.publish("pms/v1/provision/claim-s1/claim", b"c1")
        ingest.publish("pms/v1/gw/gw-s/ack", b"a1")
        ingest.publish("pms/v1/gw/gw-s/cmd/req", b"forged")  # ingest may not command gateways
        device_manager.publish("pms/v1/provision/claim-s1/answer", b"ans1")
        device_manager.publish("pms/v1/provision/claim-s1/claim", b"forged")  # only answers
        api.publish("pms/v1/gw/gw-s/cmd/req", b"cmd1")
        wait_until(lambda: {b"r1", b"c1", b"a1", b"ans1", b"cmd1"} <= {p for _, p in listener.messages}, 5,
                   "the services' permitted messages")
        assert ("pms/v1/gw/gw-s/readings", b"r1") in ingest.messages
        assert ("pms/v1/provision/claim-s1/claim", b"c1") in device_manager.messages
        assert ("pms/v1/gw/gw-s/readings", b"r1") in api.messages
        sentinel_topic = "pms/v1/gw/gw-s/cmd/req"
        api.publish(sentinel_topic, b"after")
        wait_until(lambda: (sentinel_topic, b"after") in listener.messages, 5, "the sentinel")
        assert b"forged" not in {p for _, p in listener.messages}
    finally:
        for probe in probes:
            probe.close()


def test_logins_survive_a_broker_restart(dynsec_broker: DynsecBroker) -> None:
    admin = DynsecBrokerAdmin(dynsec_broker.admin_address)
    login = asyncio.run(admin.create_gateway_login("gw-kept"))
    dynsec_broker.stop()
    dynsec_broker.start()
    probe = Probe(dynsec_broker.port, login, "gw-kept")
    try:
        assert probe.connect()
        assert asyncio.run(admin.gateway_logins()) == {"gw-kept"}
    finally:
        probe.close()
