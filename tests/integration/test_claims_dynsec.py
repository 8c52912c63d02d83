"""Zero-config provisioning end to end on the real Mosquitto with the dynamic-security plugin.

`pms device-manager` (with PMS_BROKER_ADMIN_URL), `pms ingest` and `pms api` run as processes with
their production logins; `pms collector` (PMS_LINK=sim) starts with only its serial, its factory
secret and the shared provisioning login. Acceptance 1 and the claim half of 2 (issue 11), on a SQLite
registry and on the real PostgreSQL (a scratch database).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from pms_common import timeutil, topics
from pms_common.firmware import generate_private_key_pem, load_private_key, public_key_text, sign_image
from pms_common.provisioning import ClaimAnswer, claim_client_id, make_claim
from pms_registry import Registry
from pms_registry.provisioning import FactoryRow
from pms_store.sqlite import SqliteStore
from tests.conftest import free_port, wait_until
from tests.dynsec_broker import DynsecBroker
from tests.postgres import registry_url as scratch_registry_url

pytestmark = pytest.mark.integration

ADMIN_KEY = "claims-admin-key"
SECRET = "factory-secret-of-this-gateway"


class Watcher:
    """A paho client with the broker's admin login (it may read every topic) recording what arrives."""

    def __init__(self, broker: DynsecBroker, *filters: str, client_id: str | None = None,
                 login: tuple[str, str] | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"w-{uuid.uuid4().hex[:8]}")
        self.client.username_pw_set(*(login or (broker.admin.username, broker.admin.password)))
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe([(f, 1) for f in filters])
        self.client.loop_start()
        assert self.subscribed.wait(5)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload))

    def received(self, suffix: str) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t.endswith(suffix)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def connack_of(port: int, username: str, password: str) -> Any:
    """The broker's answer to a connection with this login (paho's reason code)."""
    answered = threading.Event()
    codes: list[Any] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, code, _p: (codes.append(code), answered.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert answered.wait(10), "no CONNACK"
    finally:
        client.loop_stop()
        client.disconnect()
    return codes[0]


def http_json(url: str, method: str = "GET", body: Any = None) -> Any:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {ADMIN_KEY}",
                                                                  "Content-Type": "application/json"},
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def image_download_status(api_port: int, sha256: str, login: tuple[str, str]) -> int:
    """What the API answers the gateway's image download with this Basic login (the body checked on 200)."""
    response = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/firmware/{sha256}/image", auth=login, timeout=10)
    if response.status_code == 200:
        assert hashlib.sha256(response.content).hexdigest() == sha256
    return response.status_code


def upload_image(api_port: int, tmp_path: Path, signer: Any) -> str:
    """A signed collector wheel uploaded through the API; its digest."""
    wheel = tmp_path / "pms_collector-9.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pms_collector-9.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pms-collector\n"
                                                                   "Version: 9.0.0\n")
    manifest = sign_image(signer, wheel, "9.0.0")
    response = httpx.post(f"http://127.0.0.1:{api_port}/api/v1/firmware", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                          files={"image": wheel.read_bytes()}, data={"manifest": manifest.to_json().decode()},
                          timeout=10)
    assert response.status_code == 201, response.text
    return manifest.sha256


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with scratch_registry_url(request.param, tmp_path) as url:
        yield url


def test_a_gateway_with_only_its_factory_secret_is_claimed_and_comes_online(
        dynsec_broker: DynsecBroker, pms_processes: Any, tmp_path: Path, registry_url: str) -> None:
    broker = dynsec_broker
    run = uuid.uuid4().hex[:6]
    serial = f"SN-{run}"
    gateway_id = f"gw-sn-{run}"
    registry = Registry(registry_url)
    registry.migrate()
    registry.import_factory_gateways([FactoryRow(serial, SECRET, f"CODE-{run}")], timeutil.now_jst())
    common = {"PMS_REGISTRY_URL": registry_url, "PMS_TSDB_URL": f"sqlite:///{tmp_path}/ts.db"}

    def service_env(name: str, **extra: str) -> dict[str, str]:
        return {**common, "PMS_MQTT_URL": broker.url(broker.services[name]), "PMS_METRICS_PORT": str(free_port()),
                "PMS_MQTT_CLIENT_ID": f"{name}-{run}", **extra}

    api_port = free_port()
    pms_processes(["device-manager"], service_env(
        "device-manager", PMS_BROKER_ADMIN_URL=broker.url(broker.admin), PMS_TICK_S="0.5",
        PMS_PROVISIONING_USERNAME=broker.provisioning.username,
        PMS_PROVISIONING_PASSWORD=broker.provisioning.password))
    pms_processes(["ingest"], service_env("ingest"))
    signer = load_private_key(generate_private_key_pem())
    pms_processes(["api"], service_env("api", PMS_API_PORT=str(api_port), PMS_ADMIN_API_KEY=ADMIN_KEY,
                                       PMS_FIRMWARE_DIR=str(tmp_path / "firmware"),
                                       PMS_FIRMWARE_KEYS=json.dumps([public_key_text(signer.public_key())])))
    claims = Watcher(broker, "pms/v1/provision/#")
    credentials = tmp_path / "gw" / "credentials.json"
    collector_env = {"PMS_LINK": "sim", "PMS_MQTT_URL": broker.url(broker.provisioning),
                     "PMS_GATEWAY_SERIAL": serial, "PMS_FACTORY_SECRET": SECRET,
                     "PMS_CREDENTIALS_PATH": str(credentials), "PMS_OUTBOX_PATH": str(tmp_path / "gw" / "outbox.db"),
                     "PMS_POWER_INTERVAL_S": "1", "PMS_HEARTBEAT_INTERVAL_S": "2", "PMS_METRICS_PORT": "0",
                     "PMS_BACKFILL_DAYS": "0"}
    try:
        wait_until(lambda: http_json(f"http://127.0.0.1:{api_port}/healthz"), 90, "the API")  # a loaded machine: imports take long
        time.sleep(2.0)  # device-manager subscribed to claims
        started = time.monotonic()
        collector = pms_processes(["collector"], collector_env, name="collector")

        def online() -> bool:
            gateways = http_json(f"http://127.0.0.1:{api_port}/api/v1/gateways")["items"]
            return any(g["gateway_id"] == gateway_id and g["status"] == "online" for g in gateways)

        wait_until(online, 30, f"{gateway_id} online in GET /api/v1/gateways")
        online_after = time.monotonic() - started
        kept = json.loads(credentials.read_text())
        assert kept["gateway_id"] == kept["username"] == gateway_id and kept["password"]
        assert credentials.stat().st_mode & 0o777 == 0o600
        # The login it was issued is also what it downloads update images with (issue 12).
        image = upload_image(api_port, tmp_path, signer)
        assert image_download_status(api_port, image, (kept["username"], kept["password"])) == 200
        assert image_download_status(api_port, image, (kept["username"], "not its password")) == 401
        store = SqliteStore(tmp_path / "ts.db")
        try:
            wait_until(lambda: store.latest_power([gateway_id]).get(gateway_id), 30, "readings stored by ingest")
        finally:
            store.close()
        assert len(claims.received("/claim")) == 1 and json.loads(claims.received("/answer")[0])["ok"] is True
        assert SECRET not in collector.log() and kept["password"] not in collector.log()
        collector.stop()

        # The second start reuses the kept identity: no claim is published.
        again = pms_processes(["collector"], {**collector_env, "PMS_LOGIN_REFUSED_WAIT_S": "3"},
                              name="collector-again")
        wait_until(lambda: "running as" in again.log(), 20, "the second start to use the kept identity")
        time.sleep(3.0)
        assert len(claims.received("/claim")) == 1

        # Bound to a plant by its claim code, then unbound: its identity is revoked at once. The broker
        # drops the connection (its last will says so), and the kept login no longer gets in.
        registry.ensure_customer("C1", "Customer")
        code = registry.create_plant(customer_id="C1", name="Plant", address="Tokyo", phone="03-0000-0000",
                                     created_at=timeutil.now_jst())
        bound = http_json(f"http://127.0.0.1:{api_port}/api/v1/plants/{code}/gateway", "POST",
                          {"claim_code": f"CODE-{run}"})
        assert (bound["gateway_id"], bound["claimed"]) == (gateway_id, True)
        wait_until(online, 30, "online again after the second start")
        status = Watcher(broker, topics.status(gateway_id))
        unbound_at = time.monotonic()
        http_json(f"http://127.0.0.1:{api_port}/api/v1/gateways/{gateway_id}", "PUT", {"service_code": None})
        # The broker drops the client without its will (the deleted login may not publish it); device-manager
        # publishes the retained offline status on its behalf, and the collector sees its connection gone.
        wait_until(lambda: "refuses this gateway's login" in again.log(), 10, "the broker to drop the revoked gateway")
        dropped_after = time.monotonic() - unbound_at
        wait_until(lambda: any(json.loads(p)["state"] == "offline" for p in status.received("/status")), 10,
                   "the offline status of the revoked gateway")
        assert dropped_after < 5.0, dropped_after
        assert str(connack_of(broker.port, kept["username"], kept["password"])) == "Not authorized"
        assert image_download_status(api_port, image, (kept["username"], kept["password"])) == 401
        # A revoked gateway may claim anew with its factory secret: a new login, and it is unbound.
        wait_until(lambda: len(claims.received("/claim")) == 2, 30, "a fresh claim after the login was refused")
        wait_until(online, 30, "online with its new identity")
        renewed = json.loads(credentials.read_text())
        assert renewed["username"] == gateway_id and renewed["password"] != kept["password"]
        assert image_download_status(api_port, image, (renewed["username"], renewed["password"])) == 200
        assert http_json(f"http://127.0.0.1:{api_port}/api/v1/gateways/{gateway_id}")["service_code"] is None
        audit = http_json(f"http://127.0.0.1:{api_port}/api/v1/audit?action=bind")["items"]
        assert [(a["outcome"], a["detail"]["revoked"]) for a in audit] == [("unbound", [gateway_id]), ("bound", [])]
        status.close()
        again.stop()
        print(f"revoked gateway dropped {dropped_after:.2f} s after the unbinding")

        # A wrong proof and an unknown serial: refused with a reason, over the real broker.
        for claim_serial, secret, reason in ((serial, "not the factory secret", "bad_proof"),
                                             (f"UNKNOWN-{run}", SECRET, "unknown_serial")):
            client_id = claim_client_id(claim_serial)
            forger = Watcher(broker, topics.provision_answer(client_id), client_id=client_id,
                             login=(broker.provisioning.username, broker.provisioning.password))
            claim = make_claim(claim_serial, secret, timeutil.now_jst())
            forger.client.publish(topics.provision_claim(client_id), claim.to_json(), qos=1).wait_for_publish(5)
            answer = ClaimAnswer.model_validate_json(wait_until(lambda f=forger: f.received("/answer"), 10,
                                                                f"the answer to {reason}")[0])
            forger.close()
            assert (answer.ok, answer.reason, answer.sealed) == (False, reason, None) and answer.detail
        events = [e for e in registry.list_events() if e.kind == "claim_refused"]
        assert {e.message.split(")")[0] for e in events} == {"claim refused (bad_proof", "claim refused (unknown_serial"}
        print(f"claimed and online in {online_after:.1f} s")
    finally:
        claims.close()
        registry.close()
