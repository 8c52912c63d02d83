"""The dynamic-security broker of deploy/mosquitto: dynsec-init.sh's files, started with the exact
mosquitto-dynsec.conf (paths and port rewritten), give the services the rights pms_common.dynsec
says, confine the provisioning login to its client id, and let DynsecBrokerAdmin make gateways."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pms_common.broker_admin import BrokerLogin
from pms_common.dynsec import SERVICE_ROLES, DynsecBrokerAdmin, confined_acls, service_role
from pms_common.mqtt import BrokerAddress
from tests.common.brokers_under_test import Probe
from tests.conftest import wait_until
from tests.deploy.test_deploy_configs import MOSQUITTO_DIR, free_port, running_mosquitto, world_readable_dir

pytestmark = pytest.mark.integration
PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
PASSWORDS = {
    "PMS_MQTT_ADMIN_PASSWORD": "adminpass0123456",
    "PMS_MQTT_PROVISION_PASSWORD": "provisionpass0123",
    "PMS_SIM_MQTT_PASSWORD": "simpass0123456789",
    **{f"PMS_MQTT_{v}_PASSWORD": f"{v.lower()}-password-0123"
       for v in ("INGEST", "ALERTS", "WEATHER", "DEVICE_MANAGER", "API", "HEALTHCHECK")},
}


def dynsec_conf(workdir: Path, port: int) -> str:
    text = (MOSQUITTO_DIR / "mosquitto-dynsec.conf").read_text(encoding="utf-8")
    data = workdir / "data"
    data.mkdir()
    shutil.copy(workdir / "out" / "dynamic-security.json", data / "dynamic-security.json")
    shutil.chown(data, "mosquitto")
    shutil.chown(data / "dynamic-security.json", "mosquitto")
    acl = workdir / "acl-provisioning"
    shutil.copy(MOSQUITTO_DIR / "acl-provisioning", acl)
    acl.chmod(0o644)
    replacements = {
        r"^listener 1883\s*$": f"listener {port} 127.0.0.1",
        r"^plugin .*$": f"plugin {PLUGIN}",
        r"^plugin_opt_config_file .*$": f"plugin_opt_config_file {data / 'dynamic-security.json'}",
        r"^password_file .*$": f"password_file {workdir / 'out' / 'passwords'}",
        r"^acl_file .*$": f"acl_file {acl}",
        r"^persistence_location .*$": f"persistence_location {data}/",
    }
    for pattern, replacement in replacements.items():
        text, n = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert n == 1, f"mosquitto-dynsec.conf should have exactly one line matching {pattern!r}, found {n}"
    return text


def test_dynsec_init_refuses_a_short_password(tmp_path: Path) -> None:
    env = tmp_path / "env"
    env.write_text("".join(f"{k}={'short' if k == 'PMS_MQTT_API_PASSWORD' else v}\n" for k, v in PASSWORDS.items()))
    result = subprocess.run(["sh", str(MOSQUITTO_DIR / "dynsec-init.sh"), "-e", str(env), "-o", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "password for 'api' is shorter than 12 characters" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_production_dynsec_broker_from_dynsec_init() -> None:
    workdir = world_readable_dir()
    try:
        env = workdir / "env"
        env.write_text("".join(f"{k}={v}\n" for k, v in PASSWORDS.items()))
        subprocess.run(["sh", str(MOSQUITTO_DIR / "dynsec-init.sh"), "-e", str(env), "-o", str(workdir / "out")],
                       check=True, capture_output=True, timeout=120)
        port = free_port()
        with running_mosquitto(dynsec_conf(workdir, port), workdir, port):
            admin = DynsecBrokerAdmin(BrokerAddress(host="127.0.0.1", port=port, username="admin",
                                                    password=PASSWORDS["PMS_MQTT_ADMIN_PASSWORD"]))
            # The script's roles are exactly pms_common.dynsec's (what the fixture and tests use).
            for service, (send, receive) in SERVICE_ROLES.items():
                role = asyncio.run(admin.request({"command": "getRole", "rolename": service_role(service)}))[0]
                made = {(a["acltype"], a["topic"], a["allow"], a["priority"]) for a in role["data"]["role"]["acls"]}
                assert made == {(a["acltype"], a["topic"], a["allow"], a["priority"])
                                for a in confined_acls(send=send, receive=receive)}, service
            asyncio.run(admin.ensure_provisioning_login(
                BrokerLogin(username="provision", password=PASSWORDS["PMS_MQTT_PROVISION_PASSWORD"])))
            gateway = asyncio.run(admin.create_gateway_login("gw-deploy"))

            probes: list[Probe] = []
            try:
                def connect(login: BrokerLogin, client_id: str | None = None, subscribe: str | None = None) -> Probe:
                    probe = Probe(port, login, client_id)
                    probes.append(probe)
                    assert probe.connect(), login.username
                    if subscribe:
                        probe.subscribe(subscribe)
                    return probe

                api = connect(BrokerLogin(username="api", password=PASSWORDS["PMS_MQTT_API_PASSWORD"]), None, "pms/v1/#")
                claimer = connect(BrokerLogin(username="provision", password=PASSWORDS["PMS_MQTT_PROVISION_PASSWORD"]),
                                  "claim-deploy")
                gw = connect(gateway, "gw-deploy")
                claimer.publish("pms/v1/provision/claim-other/claim", b"forged")
                claimer.publish("pms/v1/provision/claim-deploy/claim", b"claim")
                gw.publish("pms/v1/gw/gw-other/readings", b"forged")
                gw.publish("pms/v1/gw/gw-deploy/readings", b"readings")
                wait_until(lambda: {b"claim", b"readings"} <= {p for _, p in api.messages}, 5, "permitted messages")
                assert b"forged" not in {p for _, p in api.messages}
            finally:
                for probe in probes:
                    probe.close()
        # compose's mosquitto-init runs again at every `up` (-k): it keeps the plugin's file, where the
        # broker saved the gateway's login, and writes the password file afresh.
        data = workdir / "data"
        saved = (data / "dynamic-security.json").read_text()
        assert '"gw-deploy"' in saved
        again = subprocess.run(["sh", str(MOSQUITTO_DIR / "dynsec-init.sh"), "-e", str(env), "-k", "-o", str(data)],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
        assert (data / "dynamic-security.json").read_text() == saved
        assert (data / "passwords").read_text().startswith("provision:")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
