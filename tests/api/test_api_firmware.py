"""Update images over the real Flask app, a real SQLite registry and real files: upload (checked and
stored by digest), list, and the gateways' authenticated, resumable download."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from pms_api import api_firmware
from pms_api.app import create_app
from pms_api.settings import ApiSettings
from pms_common import timeutil
from pms_common.firmware import MAX_IMAGE_BYTES, generate_private_key_pem, load_private_key, public_key_text, sign_image
from pms_registry import Registry
from pms_registry.provisioning import FactoryRow
from tests.api.conftest import ADMIN, PROBLEM
from tests.browser.serving import served

GATEWAY_PASSWORD = "broker-password-of-gw-sn-1"


@dataclass
class Firmware:
    app: Any
    client: FlaskClient
    registry: Registry
    directory: Path
    signer: Any  # Ed25519PrivateKey
    work: Path
    customer_key: str
    gateway_id: str

    def wheel(self, version: str, *, name: str = "pms-collector", size: int = 300_000) -> Path:
        """A wheel as `pip wheel` makes one, with incompressible filler so that ranges mean something."""
        path = self.work / f"pms_collector-{version}-{name}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("pms_collector/__init__.py", f'__version__ = "{version}"\n')
            archive.writestr("pms_collector/filler.bin", os.urandom(size), compress_type=zipfile.ZIP_STORED)
            archive.writestr(f"pms_collector-{version}.dist-info/METADATA",
                             f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nThe collector.\n")
            archive.writestr(f"pms_collector-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\n")
        return path

    def signed(self, version: str, **kwargs: Any) -> tuple[Path, bytes]:
        wheel = self.wheel(version)
        return wheel, sign_image(self.signer, wheel, version, **kwargs).to_json()

    def upload(self, image: bytes | Path, manifest: bytes, key: str = ADMIN) -> Any:
        data = image.read_bytes() if isinstance(image, Path) else image
        return self.client.post("/api/v1/firmware", headers={"Authorization": f"Bearer {key}"},
                                content_type="multipart/form-data",
                                data={"image": (io.BytesIO(data), "image.whl"), "manifest": manifest.decode()})

    def download(self, sha256: str, password: str | None = GATEWAY_PASSWORD, username: str | None = None,
                 **headers: str) -> Any:
        if password is not None:
            basic = base64.b64encode(f"{username or self.gateway_id}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        return self.client.get(f"/api/v1/firmware/{sha256}/image", headers=headers)


@pytest.fixture
def firmware(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migrated_registry: Path,
             pinned_clock: datetime) -> Iterator[Firmware]:
    for name in ("PMS_CONFIG", "PMS_ADMIN_PASSWORD", "PMS_CONSOLE_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    shutil.copyfile(migrated_registry, tmp_path / "r.db")
    signer = load_private_key(generate_private_key_pem())
    other = load_private_key(generate_private_key_pem())  # a second trusted key (rotation)
    directory = tmp_path / "firmware"
    app = create_app(ApiSettings(
        registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db", admin_api_key=ADMIN,
        firmware_dir=directory, firmware_keys=[public_key_text(signer.public_key()),
                                               public_key_text(other.public_key())],
        firmware_min_version="1.0.0", login_max_failures=3))
    registry: Registry = app.config["registry"]
    now = timeutil.now_jst()
    registry.ensure_customer("c1", "Customer One")
    customer_key = registry.create_api_key(label="c1", created_at=now, customer_id="c1")
    # A claimed gateway: its broker login is active and the hash of its password kept, as the claim does.
    registry.import_factory_gateways([FactoryRow("SN-1", "factory-secret-1", "CODE-1")], now)
    gateway_id = registry.record_claim("SN-1", now)
    registry.set_gateway_password(gateway_id, GATEWAY_PASSWORD, now)
    work = tmp_path / "work"
    work.mkdir()
    yield Firmware(app, app.test_client(), registry, directory, signer, work, customer_key, gateway_id)
    app.config["store"].close()
    registry.close()


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("pms_api_firmware_refused_total", {"reason": reason}) or 0.0


def downloads(outcome: str) -> float:
    return REGISTRY.get_sample_value("pms_api_firmware_downloads_total", {"outcome": outcome}) or 0.0


def stored_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def refusal(response: Any, status: int = 422) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    detail: str = response.get_json()["detail"]
    return detail


# ---- upload ------------------------------------------------------------------------------------------
def test_a_signed_image_is_stored_by_digest_recorded_and_audited(firmware: Firmware) -> None:
    wheel, manifest = firmware.signed("1.2.0", min_version="1.0.0")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    response = firmware.upload(wheel, manifest)
    assert response.status_code == 201, response.get_data(as_text=True)
    record = response.get_json()
    assert (record["sha256"], record["version"], record["size"], record["min_version"]) == \
        (digest, "1.2.0", wheel.stat().st_size, "1.0.0")
    assert record["image_url"] == f"/api/v1/firmware/{digest}/image"
    assert record["uploaded_by"] == "key:admin (PMS_ADMIN_API_KEY)"
    assert stored_files(firmware.directory) == [f"{digest}.whl"]
    assert (firmware.directory / f"{digest}.whl").read_bytes() == wheel.read_bytes()
    audit, _ = firmware.registry.list_audit(action="firmware_upload")
    assert [(a.target, a.outcome) for a in audit] == [(digest, "stored")]

    listed = firmware.client.get("/api/v1/firmware", headers={"Authorization": f"Bearer {ADMIN}"}).get_json()
    assert listed["total"] == 1 and listed["items"][0]["sha256"] == digest
    one = firmware.client.get(f"/api/v1/firmware/{digest}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert one.status_code == 200
    assert one.get_json()["manifest"] == json.loads(manifest)


def test_an_image_uploaded_twice_is_stored_once(firmware: Firmware) -> None:
    wheel, manifest = firmware.signed("1.2.0")
    assert firmware.upload(wheel, manifest).status_code == 201
    again = firmware.upload(wheel, manifest)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert stored_files(firmware.directory) == [f"{again.get_json()['sha256']}.whl"]  # no temporary file left
    assert [a.outcome for a in firmware.registry.list_audit(action="firmware_upload")[0]] == \
        ["already stored", "stored"]


def test_a_tampered_image_is_refused_naming_the_digest(firmware: Firmware) -> None:
    wheel, manifest = firmware.signed("1.2.0")
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte changed (inside the filler: still a readable zip)
    before = refused("digest_mismatch")
    detail = refusal(firmware.upload(bytes(data), manifest))
    expected = json.loads(manifest)["sha256"]
    assert f"its manifest says {expected}" in detail
    assert hashlib.sha256(bytes(data)).hexdigest() in detail
    assert refused("digest_mismatch") == before + 1
    assert stored_files(firmware.directory) == []
    assert firmware.registry.firmware_images() == []


def test_an_image_signed_by_an_unknown_key_is_refused(firmware: Firmware) -> None:
    stranger = load_private_key(generate_private_key_pem())
    wheel = firmware.wheel("1.2.0")
    manifest = sign_image(stranger, wheel, "1.2.0").to_json()
    before = refused("unknown_key")
    assert "not trusted here" in refusal(firmware.upload(wheel, manifest))
    assert refused("unknown_key") == before + 1
    # A manifest changed after signing (its version raised) fails the signature of a trusted key.
    _, good = firmware.signed("1.2.0")
    forged = json.dumps(json.loads(good) | {"version": "9.0.0"}).encode()
    assert "does not verify" in refusal(firmware.upload(wheel, forged))
    assert firmware.registry.firmware_images() == [] and stored_files(firmware.directory) == []


def test_versions_below_the_floor_or_their_own_minimum_are_refused(firmware: Firmware) -> None:
    wheel, manifest = firmware.signed("0.9.0")
    before = refused("below_floor")
    assert "below the lowest version this cloud accepts (1.0.0" in refusal(firmware.upload(wheel, manifest))
    assert refused("below_floor") == before + 1
    wheel, manifest = firmware.signed("1.1.0", min_version="1.5.0")
    assert "below its own min_version 1.5.0" in refusal(firmware.upload(wheel, manifest))


def test_a_garbled_manifest_or_a_missing_part_is_refused(firmware: Firmware) -> None:
    wheel, _ = firmware.signed("1.2.0")
    before = refused("bad_manifest")
    assert "the manifest is not valid" in refusal(firmware.upload(wheel, b'{"version": "1.2.0", "sha2'))
    assert "the manifest is not valid: sha256" in refusal(firmware.upload(wheel, b'{"version": "1.2.0"}'))
    assert refused("bad_manifest") == before + 2
    no_image = firmware.client.post("/api/v1/firmware", headers={"Authorization": f"Bearer {ADMIN}"},
                                    data={"manifest": "{}"}, content_type="multipart/form-data")
    assert "no `image` part" in refusal(no_image)


def test_a_signed_file_that_is_not_the_collector_wheel_is_refused(firmware: Firmware) -> None:
    other = firmware.wheel("1.2.0", name="something-else")
    manifest = sign_image(firmware.signer, other, "1.2.0").to_json()
    assert "not of pms-collector" in refusal(firmware.upload(other, manifest))
    mislabelled = firmware.wheel("1.3.0")
    manifest = sign_image(firmware.signer, mislabelled, "1.4.0").to_json()
    assert "the wheel is pms-collector 1.3.0; its manifest says 1.4.0" in refusal(firmware.upload(mislabelled, manifest))
    text = firmware.work / "notes.txt"
    text.write_bytes(b"not a zip at all" * 100)
    manifest = sign_image(firmware.signer, text, "1.2.0").to_json()
    assert "not a wheel" in refusal(firmware.upload(text, manifest))
    assert stored_files(firmware.directory) == []


def test_only_an_admin_may_upload(firmware: Firmware) -> None:
    wheel, manifest = firmware.signed("1.2.0")
    assert refusal(firmware.upload(wheel, manifest, key=firmware.customer_key), 403)
    assert firmware.client.post("/api/v1/firmware").status_code == 401
    assert firmware.registry.firmware_images() == []


class CountingStream(io.RawIOBase):
    """A request body of `size` bytes that counts what is read of it (seekable, as the test client
    measures its length by seeking)."""

    def __init__(self, size: int) -> None:
        self.size, self.position, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence] + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self.size - self.position))
        buffer[:n] = b"x" * n
        self.position += n
        self.read_bytes += n
        return n


def test_an_oversize_upload_is_refused_413_without_reading_it(firmware: Firmware) -> None:
    body = CountingStream(MAX_IMAGE_BYTES + 10 * 1024 * 1024)
    before = refused("too_large")
    response = firmware.client.post("/api/v1/firmware", headers={"Authorization": f"Bearer {ADMIN}"},
                                    input_stream=body, content_length=body.size,
                                    content_type="multipart/form-data; boundary=b")
    assert "at most" in refusal(response, 413)
    assert body.read_bytes == 0
    assert refused("too_large") == before + 1
    assert stored_files(firmware.directory) == []


def test_an_image_larger_than_allowed_is_cut_off_while_it_is_received(firmware: Firmware,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # A body whose length passes the first check (multipart framing, or chunked) is still bounded as
    # it is copied: the bound is lowered here so that the test sends 300 kB, not 64 MiB.
    monkeypatch.setattr(api_firmware, "MAX_IMAGE_BYTES", 100_000)
    wheel, manifest = firmware.signed("1.2.0")
    before = refused("too_large")
    assert "larger than 100000 bytes" in refusal(firmware.upload(wheel, manifest), 413)
    assert refused("too_large") == before + 1
    assert stored_files(firmware.directory) == []


# ---- download ----------------------------------------------------------------------------------------
def stored(firmware: Firmware, version: str = "1.2.0") -> tuple[str, bytes]:
    wheel, manifest = firmware.signed(version)
    assert firmware.upload(wheel, manifest).status_code == 201
    return hashlib.sha256(wheel.read_bytes()).hexdigest(), wheel.read_bytes()


def test_a_gateway_downloads_with_its_login_whole_or_resumed(firmware: Firmware) -> None:
    digest, data = stored(firmware)
    before = downloads("gateway")
    whole = firmware.download(digest)
    assert whole.status_code == 200, whole.get_data(as_text=True)
    assert whole.mimetype == "application/octet-stream" and whole.headers["ETag"] == f'"{digest}"'
    assert hashlib.sha256(whole.data).hexdigest() == digest
    # An interrupted download resumes from the middle: exactly the rest comes back.
    middle = len(data) // 2
    rest = firmware.download(digest, Range=f"bytes={middle}-", **{"If-Range": f'"{digest}"'})
    assert rest.status_code == 206
    assert rest.headers["Content-Range"] == f"bytes {middle}-{len(data) - 1}/{len(data)}"
    assert rest.data == data[middle:]
    assert hashlib.sha256(data[:middle] + rest.data).hexdigest() == digest
    assert downloads("gateway") == before + 2


def test_wrong_or_revoked_gateway_logins_get_401(firmware: Firmware) -> None:
    digest, _ = stored(firmware)
    before = downloads("bad_credentials")
    wrong = firmware.download(digest, password="guessed")
    assert "wrong gateway login" in refusal(wrong, 401)
    assert wrong.headers["WWW-Authenticate"].startswith('Basic realm="pms-firmware"')
    assert refusal(firmware.download(digest, username="gw-nobody"), 401)
    assert refusal(firmware.download(digest, password=None), 401)  # no credentials at all
    assert downloads("bad_credentials") == before + 3
    # Revoked (unbound, replaced): from the request on, not only once the broker has done it.
    firmware.registry.request_revocation(firmware.gateway_id, "unbound", timeutil.now_jst())
    assert refusal(firmware.download(digest), 401)
    request = firmware.registry.pending_revocations()[0]
    firmware.registry.mark_revoked(request.request_id, timeutil.now_jst())
    assert refusal(firmware.download(digest), 401)


def test_a_gateways_wrong_passwords_are_throttled(firmware: Firmware) -> None:
    digest, _ = stored(firmware)
    for _ in range(3):  # login_max_failures=3
        assert firmware.download(digest, password="guessed").status_code == 401
    before = downloads("throttled")
    throttled = firmware.download(digest)  # even the right password waits out the window
    assert "too many wrong logins" in refusal(throttled, 429)
    assert int(throttled.headers["Retry-After"]) > 0
    assert downloads("throttled") == before + 1


def test_operators_download_with_an_admin_key_and_unknown_digests_are_404(firmware: Firmware) -> None:
    digest, data = stored(firmware)
    admin = firmware.client.get(f"/api/v1/firmware/{digest}/image", headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.status_code == 200 and admin.data == data
    customer = firmware.client.get(f"/api/v1/firmware/{digest}/image",
                                   headers={"Authorization": f"Bearer {firmware.customer_key}"})
    assert refusal(customer, 403)
    assert "no update image" in refusal(firmware.download("0" * 64), 404)
    assert refusal(firmware.client.get(f"/api/v1/firmware/{'0' * 64}",
                                       headers={"Authorization": f"Bearer {ADMIN}"}), 404)


# ---- over real HTTP ----------------------------------------------------------------------------------
def test_over_http_a_dropped_download_resumes_where_it_stopped(firmware: Firmware) -> None:
    digest, data = stored(firmware)
    with served(firmware.app) as base:
        url = f"{base}/api/v1/firmware/{digest}/image"
        auth = (firmware.gateway_id, GATEWAY_PASSWORD)
        received = b""
        with httpx.stream("GET", url, auth=auth) as response:
            assert response.status_code == 200 and response.headers["Accept-Ranges"] == "bytes"
            assert int(response.headers["Content-Length"]) == len(data)
            for chunk in response.iter_raw(16_384):
                received += chunk
                if len(received) >= len(data) // 3:
                    break  # the connection drops a third of the way
        assert 0 < len(received) < len(data)
        rest = httpx.get(url, auth=auth, headers={"Range": f"bytes={len(received)}-", "If-Range": f'"{digest}"'})
        assert rest.status_code == 206
        assert hashlib.sha256(received + rest.content).hexdigest() == digest
        assert httpx.get(url, auth=(firmware.gateway_id, "guessed")).status_code == 401


def test_over_http_a_chunked_upload_without_a_length_is_cut_off(firmware: Firmware,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_firmware, "MAX_UPLOAD_BYTES", 100_000)  # instead of sending 64 MiB
    wheel, manifest = firmware.signed("1.2.0")
    boundary = "pms-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"manifest\"\r\n\r\n".encode() + manifest
            + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"i.whl\"\r\n"
              "Content-Type: application/octet-stream\r\n\r\n".encode() + wheel.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode())

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    before = refused("too_large")
    with served(firmware.app) as base:
        response = httpx.post(f"{base}/api/v1/firmware", content=chunks(),
                              headers={"Authorization": f"Bearer {ADMIN}",
                                       "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"] == PROBLEM
    assert refused("too_large") == before + 1
    assert stored_files(firmware.directory) == [] and firmware.registry.firmware_images() == []


def test_a_key_that_does_not_parse_stops_the_api_at_start() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ApiSettings(firmware_keys=["ed25519:" + base64.b64encode(b"short").decode()])


def test_a_relative_firmware_dir_is_the_working_directorys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           migrated_registry: Path) -> None:
    """`pms up` and the default setting name `var/firmware`: the image is stored and served from there,
    not from a folder beside the API's package (a 500 once, seen with pms up)."""
    shutil.copyfile(migrated_registry, tmp_path / "r.db")
    monkeypatch.chdir(tmp_path)
    signer = load_private_key(generate_private_key_pem())
    app = create_app(ApiSettings(registry_url=f"sqlite:///{tmp_path}/r.db", tsdb_url=f"sqlite:///{tmp_path}/ts.db",
                                 admin_api_key=ADMIN, firmware_dir=Path("var/firmware"),
                                 firmware_keys=[public_key_text(signer.public_key())]))
    try:
        image = tmp_path / "pms_collector-1.0.0-py3-none-any.whl"
        with zipfile.ZipFile(image, "w") as archive:
            archive.writestr("pms_collector-1.0.0.dist-info/METADATA",
                             "Metadata-Version: 2.1\nName: pms-collector\nVersion: 1.0.0\n")
        manifest = sign_image(signer, image, "1.0.0")
        client = app.test_client()
        uploaded = client.post("/api/v1/firmware", headers={"Authorization": f"Bearer {ADMIN}"},
                               content_type="multipart/form-data",
                               data={"image": (io.BytesIO(image.read_bytes()), "image.whl"),
                                     "manifest": manifest.to_json().decode()})
        assert uploaded.status_code == 201, uploaded.get_json()
        assert (tmp_path / "var" / "firmware" / f"{manifest.sha256}.whl").exists()
        monkeypatch.chdir("/")  # the working directory may change later; the store's folder does not
        got = client.get(f"/api/v1/firmware/{manifest.sha256}/image", headers={"Authorization": f"Bearer {ADMIN}"})
        assert got.status_code == 200 and got.data == image.read_bytes()
    finally:
        app.config["store"].close()
        app.config["registry"].close()
