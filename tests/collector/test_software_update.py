"""Acceptance of the gateway side of a remote software update (issue 12), with real processes.

A Mosquitto of the module's own, `pms ingest` into a SQLite store, and gateways each run as
`python -m pms_collector.boot` (the launcher systemd runs) over slots made from images that
`pms firmware build` built and `pms firmware sign` signed with a key of `pms firmware keygen`. The
images are uploaded to the real API (served over HTTP in the test process), which the gateways
download them from with their own logins (each registered as a claim leaves it); images the API
refuses are served to gateways anyway by a small HTTP server of the test (Basic auth and Range, as
a hostile or broken server would), to show the gateway refuses them too. The update job is
published retained, as device-manager does. Each gateway's meter is simulated in-process
(`link = sim`) on a clock 120 times real time, so 30-minute slots pass every 15 s and a restart
spans some: every one of them must still be stored.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import REGISTRY

from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_collector.update_slots import SlotRoot
from pms_common import timeutil, topics
from pms_registry import Registry
from pms_registry.provisioning import FactoryRow
from tests.browser.serving import served
from tests.collector.broker import OwnBroker
from tests.conftest import PmsProcess, wait_until

REPO = Path(__file__).resolve().parents[2]
SPEED = 120.0
START = datetime(2026, 11, 2, 9, 0, 5, tzinfo=timeutil.JST)
INSTALLED = datetime(2026, 7, 1, tzinfo=timeutil.JST)
ADMIN = "admin-update-test"
# Real installs: three wheels built, venvs made, gateways restarted while simulated slots pass (about
# a minute a test). CI runs them; a developer's `make test` leaves them out (`pytest -m slow` runs them).
pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _pms(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pms.cli", *args], capture_output=True, text=True, check=False,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PMS_")})
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---- images: built once for the module ----------------------------------------------------------------
class Images:
    def __init__(self, root: Path) -> None:
        self.dir = root / "images"
        keys = root / "keys"
        out = _pms("firmware", "keygen", str(keys))
        self.public = out.strip().splitlines()[-1].rpartition(" ")[2]
        assert self.public.startswith("ed25519:")
        self.key = keys / "signing.key"
        rogue = root / "rogue"
        _pms("firmware", "keygen", str(rogue))
        self.rogue_key = rogue / "signing.key"
        self.factory = Path(_pms("firmware", "build", "--version", "0.1.0", str(self.dir)).strip())
        self.good = Path(_pms("firmware", "build", "--version", "0.2.0", str(self.dir)).strip())
        _pms("firmware", "sign", str(self.key), str(self.good))
        # 0.3.0 never publishes a readings batch: its collector fails the health check.
        source = root / "unhealthy-src"
        for part in ("libs/pms_common", "libs/echonet", "services/collector/pms_collector"):
            shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(REPO / "pyproject.toml", source / "pyproject.toml")
        uplink = source / "services/collector/pms_collector/uplink.py"
        text = uplink.read_text()
        assert "for batch in self.outbox.pending(limit=room, after_seq=after):" in text
        uplink.write_text(text.replace("for batch in self.outbox.pending(limit=room, after_seq=after):",
                                       "for batch in self.outbox.pending(limit=room, after_seq=after)[:0]:"))
        unhealthy_dir = root / "unhealthy"
        self.unhealthy = Path(_pms("firmware", "build", "--version", "0.3.0", "--source", str(source),
                                   str(unhealthy_dir)).strip())
        _pms("firmware", "sign", str(self.key), str(self.unhealthy))

    def manifest(self, image: Path) -> dict[str, Any]:
        return dict(json.loads(image.with_name(image.name + ".manifest.json").read_text()))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    return Images(tmp_path_factory.mktemp("images"))


# ---- the image server ----------------------------------------------------------------------------------
class ImageServer:
    """GET /images/<file> with HTTP Basic (any gateway whose password is `pw-<id>`) and `Range: bytes=N-`."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        self.requests: list[tuple[str, str, str | None]] = []  # (user, path, range)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                user, _, password = base64.b64decode(auth.removeprefix("Basic ") or "Og==").decode().partition(":")
                server.requests.append((user, self.path, self.headers.get("Range")))
                if not auth.startswith("Basic ") or password != f"pw-{user}":
                    self.send_response(401)
                    self.end_headers()
                    return
                path = server.files.get(self.path.rpartition("/")[2])
                if path is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = path.read_bytes()
                start = 0
                if (wanted := self.headers.get("Range")) and wanted.startswith("bytes="):
                    start = int(wanted.removeprefix("bytes=").partition("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, path: Path, name: str | None = None) -> str:
        name = name or path.name
        self.files[name] = path
        return f"http://127.0.0.1:{self.port}/images/{name}"


class Cloud:
    """The broker, ingest, the API (images uploaded and downloaded there) and a hostile image server of
    the module, and an MQTT client acting as device-manager."""

    def __init__(self, workdir: Path, trusted_key: str) -> None:
        self.workdir = workdir
        self.api = create_app(ApiSettings(registry_url=f"sqlite:///{workdir / 'registry.db'}",
                                          tsdb_url=f"sqlite:///{workdir / 'api-ts.db'}", admin_api_key=ADMIN,
                                          firmware_dir=workdir / "firmware", firmware_keys=[trusted_key]))
        self.registry: Registry = self.api.config["registry"]
        self._serving = served(self.api)
        self.api_url = self._serving.__enter__()
        self.uploaded: dict[Path, str] = {}
        self.broker = OwnBroker(workdir)
        self.broker.start()
        self.ts_db = workdir / "ts.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
        env.update(PMS_MQTT_URL=self.broker.url, PMS_TSDB_URL=f"sqlite:///{self.ts_db}", PMS_METRICS_PORT="0",
                   PMS_MQTT_CLIENT_ID="ingest-update-test")
        self.ingest = PmsProcess(["ingest"], env, workdir, workdir / "ingest.log")
        self.images = ImageServer()
        self.reports: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cloud-{uuid.uuid4().hex[:6]}")
        subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.subscribe(topics.ALL_UPDATE_STATES, qos=1)
        self.client.loop_start()
        assert subscribed.wait(5)

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.payload:
            with self.lock:
                self.reports.append((message.topic, json.loads(message.payload)))

    def states(self, gateway_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for t, r in self.reports if t == topics.update_state(gateway_id)]

    def state_names(self, gateway_id: str) -> list[str]:
        """The states reported, a download's progress reports folded into one."""
        names: list[str] = []
        for report in self.states(gateway_id):
            if not names or names[-1] != report["state"]:
                names.append(report["state"])
        return names

    def last(self, gateway_id: str) -> dict[str, Any] | None:
        states = self.states(gateway_id)
        return states[-1] if states else None

    def enrol(self, gateway_id: str, password: str) -> None:
        """The gateway as its claim leaves it in the registry: an active broker login, its password's hash."""
        serial = gateway_id.removeprefix("gw-")
        now = timeutil.now_jst()
        self.registry.import_factory_gateways([FactoryRow(serial, f"factory-secret-{serial}", f"code-{serial}")], now)
        assert self.registry.record_claim(serial, now) == gateway_id
        self.registry.set_gateway_password(gateway_id, password, now)

    def upload(self, image: Path, manifest: dict[str, Any]) -> str:
        """The image uploaded through the API (once); its download URL there."""
        if image not in self.uploaded:
            response = self.api.test_client().post(
                "/api/v1/firmware", headers={"Authorization": f"Bearer {ADMIN}"}, content_type="multipart/form-data",
                data={"image": (image.open("rb"), image.name), "manifest": json.dumps(manifest)})
            assert response.status_code in (200, 201), response.get_json()
            self.uploaded[image] = f"{self.api_url}{response.get_json()['image_url']}"
        return self.uploaded[image]

    def publish_job(self, gateway_id: str, image: Path, manifest: dict[str, Any], version: str, *,
                    url: str | None = None, health_timeout_s: float = 60.0) -> str:
        """A job for `image`, downloaded from the API unless `url` names another server."""
        now = timeutil.now_jst()
        job_id = f"r{uuid.uuid4().hex[:6]}.{gateway_id}"
        job = {"job_id": job_id, "rollout_id": job_id.partition(".")[0], "version": version,
               "image_url": url or self.upload(image, manifest), "manifest": manifest,
               "not_after": (now + timedelta(hours=1)).isoformat(), "health_timeout_s": health_timeout_s,
               "issued_at": now.isoformat()}
        self.client.publish(topics.update_job(gateway_id), json.dumps(job), qos=1, retain=True).wait_for_publish(5)
        return job_id

    def slots(self, gateway_id: str, first: datetime, last: datetime) -> dict[datetime, int]:
        """Rows per 30-minute slot end in (first, last] with both registers, as the store holds them."""
        if not self.ts_db.exists():
            return {}
        with sqlite3.connect(f"file:{self.ts_db}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute("SELECT slot_end, count(*) FROM energy_slot WHERE gateway_id = ? AND slot_end > ? "
                              "AND slot_end <= ? AND forward_kwh IS NOT NULL AND reverse_kwh IS NOT NULL "
                              "GROUP BY slot_end", (gateway_id, timeutil.to_epoch(first),
                                                    timeutil.to_epoch(last))).fetchall()
        return {timeutil.from_epoch(float(slot)): int(count) for slot, count in rows}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.ingest.stop()
        self.images.httpd.shutdown()
        self._serving.__exit__(None, None, None)
        self.api.config["store"].close()
        self.registry.close()
        self.broker.stop()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, images: Images) -> Iterator[Cloud]:
    cloud = Cloud(tmp_path_factory.mktemp("cloud"), images.public)
    try:
        yield cloud
    finally:
        cloud.close()


class Gateway:
    """One gateway: the launcher as its own process group (a power cut kills it whole)."""

    def __init__(self, cloud: Cloud, images: Images, workdir: Path, gateway_id: str) -> None:
        self.cloud = cloud
        self.gateway_id = gateway_id
        self.root = SlotRoot(workdir / "update")
        self.anchor = time.time()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
        env.update(PMS_MQTT_URL=f"mqtt://{gateway_id}:pw-{gateway_id}@127.0.0.1:{cloud.broker.port}",
                   PMS_GATEWAY_ID=gateway_id, PMS_LINK="sim", PMS_OUTBOX_PATH=str(workdir / "outbox.db"),
                   PMS_METRICS_PORT="0", PMS_POWER_INTERVAL_S="1", PMS_HEARTBEAT_INTERVAL_S="5",
                   PMS_SLOT_FALLBACK_S="2", PMS_RESEND_TIMEOUT_S="3", PMS_BACKFILL_DAYS="0",
                   PMS_BACKFILL_RETRY_S="1", PMS_CLOCK_START=START.isoformat(), PMS_CLOCK_SPEED=str(SPEED),
                   PMS_CLOCK_ANCHOR_EPOCH=f"{self.anchor:.6f}", PMS_SIM_INSTALLED_AT=INSTALLED.isoformat(),
                   PMS_FIRMWARE_KEYS=json.dumps([images.public]), PMS_UPDATE_PROGRESS_INTERVAL_S="0.2",
                   PMS_CREDENTIALS_PATH=str(workdir / "credentials.json"))
        self.env = env
        self.workdir = workdir
        self.factory = images.factory
        self.launches = 0
        self.process = self.launch()

    def launch(self) -> PmsProcess:
        self.launches += 1
        process = PmsProcess.__new__(PmsProcess)
        process.args = ["boot"]
        process.log_path = self.workdir / f"gateway-{self.launches}.log"
        process._log = process.log_path.open("ab")
        process.proc = subprocess.Popen(
            [sys.executable, "-m", "pms_collector.boot", "--root", str(self.root.root), "--factory-image",
             str(self.factory), "--crash-delay", "1"], env=self.env, cwd=self.workdir, stdout=process._log,
            stderr=subprocess.STDOUT, start_new_session=True)
        return process

    def world_now(self) -> datetime:
        return START + timedelta(seconds=(time.time() - self.anchor) * SPEED)

    def power_cut(self) -> None:
        os.killpg(self.process.proc.pid, signal.SIGKILL)
        self.process.proc.wait(10)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("gateway-*.log")))

    def running_version(self) -> str | None:
        state = self.root.load() if self.root.exists() else None
        return state.committed_version if state else None

    def assert_every_slot_stored_once(self, since: datetime, at_least: int = 3) -> int:
        """Every slot from `since` to one slot before now is in the store, once (after waiting until
        `at_least` slots have ended since `since`, so that the restart falls among them)."""
        first = timeutil.slot_end_at_or_before(since) + timeutil.SLOT
        wait_until(lambda: timeutil.slot_end_at_or_before(self.world_now()) - timeutil.SLOT
                   >= first + timeutil.SLOT * (at_least - 1), at_least * 15 + 30, "the meter's slots to pass")
        last = timeutil.slot_end_at_or_before(self.world_now()) - timeutil.SLOT
        expected = []
        slot = first
        while slot <= last:
            expected.append(slot)
            slot += timeutil.SLOT

        def complete() -> bool:
            stored = self.cloud.slots(self.gateway_id, first - timeutil.SLOT, last)
            return all(stored.get(s) == 1 for s in expected)

        wait_until(complete, 60, f"{self.gateway_id}: every slot from {first:%H:%M} to {last:%H:%M} stored")
        assert set(self.cloud.slots(self.gateway_id, first - timeutil.SLOT, last).values()) <= {1}
        return len(expected)

    def stop(self) -> None:
        if self.process.alive():
            os.killpg(self.process.proc.pid, signal.SIGTERM)
            try:
                self.process.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.proc.pid, signal.SIGKILL)
                self.process.proc.wait(5)
        self.process._log.close()


@pytest.fixture
def gateway(cloud: Cloud, images: Images, tmp_path: Path) -> Iterator[Gateway]:
    gateway_id = f"gw-up{uuid.uuid4().hex[:6]}"
    cloud.enrol(gateway_id, f"pw-{gateway_id}")
    gateway = Gateway(cloud, images, tmp_path, gateway_id)
    try:
        wait_until(lambda: gateway.cloud.slots(gateway.gateway_id, START, gateway.world_now()), 90,
                   f"{gateway.gateway_id}: a first slot stored (slot a running)")
        yield gateway
    finally:
        gateway.stop()


def _wait_state(gateway: Gateway, state: str, timeout: float) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        last = gateway.cloud.last(gateway.gateway_id)
        return last if last is not None and last["state"] == state else None

    try:
        return dict(wait_until(reached, timeout, f"{gateway.gateway_id}: update state {state}"))
    except AssertionError:
        print(gateway.log()[-6000:])
        raise


# ---- (a) an update goes through --------------------------------------------------------------------------
def test_a_gateway_updates_restarts_into_the_new_slot_and_commits(gateway: Gateway, images: Images) -> None:
    since = gateway.world_now()
    started = time.monotonic()
    downloads = REGISTRY.get_sample_value("pms_api_firmware_downloads_total", {"outcome": "gateway"}) or 0.0
    job_id = gateway.cloud.publish_job(gateway.gateway_id, images.good, images.manifest(images.good), "0.2.0")
    committed = _wait_state(gateway, "committed", 120)
    print(f"(a) job to committed: {time.monotonic() - started:.1f} s")
    assert gateway.cloud.state_names(gateway.gateway_id) == [
        "downloading", "verifying", "installing", "restarting", "checking_health", "committed"]
    assert (committed["job_id"], committed["version"], committed["target_version"]) == (job_id, "0.2.0", "0.2.0")
    state = gateway.root.load()
    assert (state.committed_slot, state.committed_version, state.trial) == ("b", "0.2.0", None)
    # Downloaded from the API with its own login (a wrong one answers 401 and the job fails).
    assert (REGISTRY.get_sample_value("pms_api_firmware_downloads_total", {"outcome": "gateway"}) or 0.0) > downloads
    # The slot's own packages come first: its pms_collector, not the launcher environment's.
    where = subprocess.run([str(gateway.root.slot_python("b")), "-c", "import pms_collector, pms_common, aiomqtt;"
                            "print(pms_collector.__file__, pms_common.__file__, aiomqtt.__file__)"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert [Path(p).is_relative_to(gateway.root.slot_dir("b")) for p in where] == [True, True, False]
    slots = gateway.assert_every_slot_stored_once(since)
    print(f"(a) slots across the restart, each stored once: {slots}")
    assert slots >= 3


# ---- (b) an unhealthy image rolls back by itself ---------------------------------------------------------
def test_an_unhealthy_image_rolls_back_to_the_committed_slot(gateway: Gateway, images: Images) -> None:
    since = gateway.world_now()
    gateway.cloud.publish_job(gateway.gateway_id, images.unhealthy, images.manifest(images.unhealthy), "0.3.0",
                              health_timeout_s=15)
    started = time.monotonic()
    rolled = _wait_state(gateway, "rolled_back", 150)
    print(f"(b) job to rolled_back: {time.monotonic() - started:.1f} s")
    assert gateway.cloud.state_names(gateway.gateway_id) == [
        "downloading", "verifying", "installing", "restarting", "checking_health", "rolled_back"]
    assert (rolled["version"], rolled["target_version"]) == ("0.1.0", "0.3.0")
    assert rolled["reason"] == "no health within 15 s: no readings batch acked by ingest"
    state = gateway.root.load()
    assert (state.committed_slot, state.committed_version, state.trial) == ("a", "0.1.0", None)
    print(f"(b) slots across both restarts, each stored once: {gateway.assert_every_slot_stored_once(since)}")


# ---- (c) a power cut mid-install -------------------------------------------------------------------------
def test_a_power_cut_mid_install_comes_back_on_the_committed_slot(gateway: Gateway, images: Images) -> None:
    since = gateway.world_now()
    gateway.cloud.publish_job(gateway.gateway_id, images.good, images.manifest(images.good), "0.2.0")
    wait_until(lambda: gateway.root.load().installing is not None, 60, "the install marker")
    gateway.power_cut()
    assert gateway.root.load().installing is not None  # the launcher finds it at the next boot
    gateway.process = gateway.launch()  # systemd starts the unit again
    failed = _wait_state(gateway, "failed", 60)
    assert failed["reason"] == "the install was interrupted (the gateway restarted)"
    assert failed["version"] == "0.1.0"
    state = gateway.root.load()
    assert (state.committed_slot, state.installing, state.trial) == ("a", None, None)
    assert not gateway.root.slot_dir("b").exists()
    print(f"(c) slots across the power cut, each stored once: {gateway.assert_every_slot_stored_once(since)}")


# ---- refusals before anything is installed ---------------------------------------------------------------
def test_bad_images_are_refused_before_install(gateway: Gateway, images: Images, tmp_path: Path) -> None:
    tampered = tmp_path / images.good.name
    data = bytearray(images.good.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    cases: list[tuple[str, Path, dict[str, Any], str]] = [
        ("tampered", tampered, images.manifest(images.good), "the image's sha256 is"),
    ]
    rogue_image = tmp_path / "rogue" / images.good.name
    rogue_image.parent.mkdir()
    shutil.copy(images.good, rogue_image)
    _pms("firmware", "sign", str(images.rogue_key), str(rogue_image))
    cases.append(("rogue", rogue_image, images.manifest(rogue_image), "which is not trusted here"))
    garbled = {**images.manifest(images.good), "signature": "bm90IGEgc2lnbmF0dXJl"}
    cases.append(("garbled", images.good, garbled, "signature does not verify"))
    unsigned = {k: v for k, v in images.manifest(images.good).items() if k != "signature"}
    cases.append(("unsigned", images.good, unsigned, "the manifest is not valid: signature"))
    for name, image, manifest, says in cases:
        # The API refuses each at upload (422)...
        refused = gateway.cloud.api.test_client().post(
            "/api/v1/firmware", headers={"Authorization": f"Bearer {ADMIN}"}, content_type="multipart/form-data",
            data={"image": (image.open("rb"), image.name), "manifest": json.dumps(manifest)})
        assert refused.status_code == 422, (name, refused.get_json())
        # ...and a gateway served it anyway (a hostile or broken server) refuses it before installing.
        before = len(gateway.cloud.states(gateway.gateway_id))
        url = gateway.cloud.images.serve(image, f"{name}-{image.name}")
        job_id = gateway.cloud.publish_job(gateway.gateway_id, image, manifest, "0.2.0", url=url)
        report = dict(wait_until(lambda job_id=job_id, before=before: next(
            (r for r in gateway.cloud.states(gateway.gateway_id)[before:] if r["job_id"] == job_id
             and r["state"] == "failed"), None), 60, f"{name}: failed"))
        assert says in report["reason"], (name, report["reason"])
        assert "installing" not in [r["state"] for r in gateway.cloud.states(gateway.gateway_id)[before:]]
        state = gateway.root.load()
        assert (state.committed_slot, state.committed_version, state.trial, state.installing) == (
            "a", "0.1.0", None, None)
        assert not gateway.root.slot_dir("b").exists()


# ---- the image itself ------------------------------------------------------------------------------------
IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
SERVER = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in SERVER:
            raise ImportError(f"a server module: {name}")
sys.meta_path.insert(0, Block())
for package in ("pms_collector", "pms_common", "echonet"):
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if info.name != "pms_collector.__main__":
            importlib.import_module(info.name)
            print(info.name)
"""


def test_the_image_is_the_gateway_packages_needing_only_the_gateway_dependencies(images: Images,
                                                                                  tmp_path: Path) -> None:
    import tomllib
    import zipfile

    from pms.cli import SERVER_MODULES
    from pms_collector.update_slots import install_slot

    with zipfile.ZipFile(images.factory) as wheel:
        names = wheel.namelist()
        metadata = wheel.read("pms_collector-0.1.0.dist-info/METADATA").decode()
        entry_points = wheel.read("pms_collector-0.1.0.dist-info/entry_points.txt").decode()
    assert {n.split("/")[0] for n in names} == {"pms_collector", "pms_common", "echonet",
                                                "pms_collector-0.1.0.dist-info"}
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    requires = [line.removeprefix("Requires-Dist: ") for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")]
    assert len(requires) == len(core) and "Name: pms-collector" in metadata
    assert "pms-collector = pms_collector.main:main" in entry_points
    assert "pms-collector-boot = pms_collector.boot:main" in entry_points
    # Installed in a slot, every module of it imports with the server modules made unimportable.
    root = SlotRoot(tmp_path)
    install_slot(root, "a", images.factory, "0.1.0")
    done = subprocess.run([str(root.slot_python("a")), "-c", IMPORT_EVERYTHING,
                           ",".join(SERVER_MODULES | {"pvlib", "pandas"})], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    imported = done.stdout.split()
    assert "pms_collector.boot" in imported and "pms_common.firmware" in imported and len(imported) > 50
