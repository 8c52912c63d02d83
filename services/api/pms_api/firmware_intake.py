"""What the cloud checks of an uploaded update image before it stores it, in the order it checks it.

The manifest first (it is small and comes before anything is written): parsed, signed by a trusted
key, of an allowed version. Then the image against the manifest: its size and sha256 as counted
while it was received, and that it is a wheel of pms-collector at the manifest's version (a signed
manifest over the wrong wheel would otherwise be stored and sent to gateways). No I/O but reading
the received wheel; every refusal is an `UploadRefused` with a reason (a metric label) and a sentence.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping
from email.parser import HeaderParser
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pms_common.firmware import IMAGE_NAME, FirmwareRefused, Manifest, parse_manifest, verify_manifest

# A wheel's METADATA is a few kB; more is not a wheel we built (and not worth inflating).
_MAX_METADATA_BYTES = 1 << 20


class UploadRefused(Exception):
    """An upload the cloud does not store: `reason` for the metric, the message a sentence for the uploader."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_manifest(data: bytes | str, trusted: Mapping[str, Ed25519PublicKey], floor: str | None) -> Manifest:
    """The manifest, if it parses, a trusted key signed it and its version is allowed."""
    try:
        manifest = parse_manifest(data)
        verify_manifest(manifest, trusted)
    except FirmwareRefused as exc:
        raise UploadRefused(exc.code, str(exc)) from None
    if floor is not None and manifest.parsed_version < Version(floor):
        raise UploadRefused("below_floor", f"version {manifest.version} is below the lowest version this cloud "
                                           f"accepts ({floor}, PMS_FIRMWARE_MIN_VERSION)")
    if manifest.min_version is not None and manifest.parsed_version < Version(manifest.min_version):
        raise UploadRefused("below_own_min_version", f"version {manifest.version} is below its own min_version "
                                                     f"{manifest.min_version}: it could never be installed")
    return manifest


def check_image(manifest: Manifest, sha256: str, size: int, wheel: Path) -> None:
    """Raise UploadRefused unless the received image (its digest and size as counted) is the manifest's
    and a wheel of pms-collector at the manifest's version."""
    if size != manifest.size:
        raise UploadRefused("size_mismatch", f"the image is {size} bytes; its manifest says {manifest.size}")
    if sha256 != manifest.sha256:
        raise UploadRefused("digest_mismatch", f"the image's sha256 is {sha256}; its manifest says "
                                               f"{manifest.sha256}: the image was changed or damaged")
    name, version = wheel_name_and_version(wheel)
    if canonicalize_name(name) != IMAGE_NAME:
        raise UploadRefused("wrong_package", f"the wheel is of {name!r}, not of {IMAGE_NAME}")
    try:
        same = Version(version) == manifest.parsed_version
    except InvalidVersion:
        same = False
    if not same:
        raise UploadRefused("wrong_version", f"the wheel is {IMAGE_NAME} {version}; its manifest says "
                                             f"{manifest.version}")


def wheel_name_and_version(wheel: Path) -> tuple[str, str]:
    """Name and Version of the wheel's top-level `*.dist-info/METADATA`; UploadRefused("not_a_wheel")."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            found = [info for info in archive.infolist()
                     if info.filename.count("/") == 1 and info.filename.endswith(".dist-info/METADATA")]
            if len(found) != 1:
                raise UploadRefused("not_a_wheel", f"the image is a zip with {len(found)} *.dist-info/METADATA, "
                                                   "not a wheel (which has exactly one)")
            if found[0].file_size > _MAX_METADATA_BYTES:
                raise UploadRefused("not_a_wheel", "the wheel's METADATA is too large to be one")
            text = archive.read(found[0]).decode("utf-8", errors="replace")
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, zlib.error) as exc:
        raise UploadRefused("not_a_wheel", f"the image is not a wheel (not a readable zip: {exc})") from None
    headers = HeaderParser().parsestr(text, headersonly=True)
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise UploadRefused("not_a_wheel", "the wheel's METADATA names no Name or no Version")
    return str(name).strip(), str(version).strip()
