"""Signed update images of the gateway's software: the manifest, its Ed25519 signature, and the
checks the cloud (at upload) and every gateway (before it installs anything) run on an image.

An image is a wheel of the collector. Its manifest names the version, the wheel's sha256 and size,
and the lowest version it may replace, and is signed with an Ed25519 key whose public half the
gateways hold (two may be trusted at once, so a key can be rotated without a flag day). The
signature covers the manifest's canonical JSON without the signature itself — fields a newer
signer adds are signed too, and a reader that does not know them still verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from packaging.version import InvalidVersion, Version
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from pms_common import timeutil

IMAGE_NAME = "pms-collector"
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # a collector wheel is well under 1 MiB; this bounds a download
_CHUNK = 1 << 16

RefusalCode = Literal["bad_manifest", "unknown_key", "bad_signature", "digest_mismatch", "size_mismatch",
                      "too_old", "not_newer", "version_not_allowed"]


class FirmwareRefused(Exception):
    """An image that must not be installed (or stored): `code` for metrics, the message a sentence."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _is_version(text: str) -> str:
    try:
        Version(text)
    except InvalidVersion:
        raise ValueError(f"{text!r} is not a version (PEP 440, e.g. 1.4.0)") from None
    return text


VersionText = Annotated[str, AfterValidator(_is_version)]


class Manifest(BaseModel):
    """What a signer says of one image; sent to gateways inside each update job."""

    model_config = ConfigDict(extra="allow", frozen=True)

    format: Literal[1] = 1
    name: Literal["pms-collector"] = "pms-collector"
    version: VersionText
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(gt=0, le=MAX_IMAGE_BYTES)
    # The lowest running version this image may replace (an image may rely on a migration an older
    # release did); None: any.
    min_version: VersionText | None = None
    created_at: Annotated[datetime, AfterValidator(timeutil.require_aware)]
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    signature: str  # base64 of the Ed25519 signature over `signed_bytes()`

    def signed_bytes(self) -> bytes:
        body = self.model_dump(mode="json", exclude={"signature"})
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


def parse_manifest(data: bytes | str | Mapping[str, object]) -> Manifest:
    """The manifest in `data`, or FirmwareRefused("bad_manifest") naming what is wrong."""
    try:
        if isinstance(data, Mapping):
            return Manifest.model_validate(data)
        return Manifest.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise FirmwareRefused("bad_manifest", f"the manifest is not valid: {where}: {first['msg']}") from None


# ---- keys ------------------------------------------------------------------------------------------
def generate_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key is not an Ed25519 key")
    return key


def public_key_text(public: Ed25519PublicKey) -> str:
    """The form a gateway's settings hold: `ed25519:` and the raw 32-byte key in base64."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + base64.b64encode(raw).decode()


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key as `ed25519:<base64 of 32 bytes>` or as PEM."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the public key is not an Ed25519 key")
        return key
    body = text.removeprefix("ed25519:")
    try:
        raw = base64.b64decode(body, validate=True)
    except binascii.Error:
        raise ValueError("a public key is 'ed25519:' and base64 of 32 bytes, or PEM") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def trusted_keys(texts: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """The keys a verifier trusts, by key id (settings hold one or two, for rotation)."""
    keys = [parse_public_key(text) for text in texts if text.strip()]
    return {key_id(key): key for key in keys}


# ---- signing and checking --------------------------------------------------------------------------
def file_sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def sign_image(private: Ed25519PrivateKey, image: Path, version: str, *, min_version: str | None = None,
               at: datetime | None = None) -> Manifest:
    sha256, size = file_sha256(image)
    unsigned = {"version": version, "sha256": sha256, "size": size, "min_version": min_version,
                "created_at": (at or timeutil.now_jst()).isoformat(), "key_id": key_id(private.public_key()),
                "signature": ""}
    draft = parse_manifest(unsigned)
    signature = base64.b64encode(private.sign(draft.signed_bytes())).decode()
    return draft.model_copy(update={"signature": signature})


def verify_manifest(manifest: Manifest, trusted: Mapping[str, Ed25519PublicKey]) -> None:
    """Raise FirmwareRefused unless a trusted key signed exactly this manifest."""
    key = trusted.get(manifest.key_id)
    if key is None:
        known = ", ".join(sorted(trusted)) or "none"
        raise FirmwareRefused("unknown_key", f"the manifest is signed by key {manifest.key_id}, which is not "
                                             f"trusted here (trusted: {known})")
    try:
        signature = base64.b64decode(manifest.signature, validate=True)
        key.verify(signature, manifest.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        raise FirmwareRefused("bad_signature", f"the manifest's signature does not verify with key "
                                               f"{manifest.key_id}: the manifest was changed or not signed "
                                               "by that key") from None


def verify_image(manifest: Manifest, image: Path) -> None:
    """Raise FirmwareRefused unless `image` is the file the manifest describes (size, then sha256)."""
    sha256, size = file_sha256(image)
    if size != manifest.size:
        raise FirmwareRefused("size_mismatch", f"the image is {size} bytes; its manifest says {manifest.size}")
    if sha256 != manifest.sha256:
        raise FirmwareRefused("digest_mismatch", f"the image's sha256 is {sha256}; its manifest says "
                                                 f"{manifest.sha256}: the image was changed or damaged")


def check_replaces(manifest: Manifest, running: str) -> None:
    """Raise FirmwareRefused when the image may not replace the `running` version."""
    current = Version(running)
    if manifest.min_version is not None and current < Version(manifest.min_version):
        raise FirmwareRefused("too_old", f"version {manifest.version} replaces {manifest.min_version} or newer; "
                                         f"this gateway runs {running}")
    if manifest.parsed_version < current:
        raise FirmwareRefused("not_newer", f"version {manifest.version} is older than the running {running}")


def version_of_firmware(firmware: str) -> str:
    """The version in a heartbeat's `firmware` text (`pms-collector/1.2.0` → `1.2.0`)."""
    return firmware.rpartition("/")[2]
