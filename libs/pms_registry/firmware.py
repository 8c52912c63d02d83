"""Update images the cloud holds (their manifests; the files live in the API's firmware directory),
and the hash of each gateway's broker password, which authenticates its image downloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from pms_registry import schema as t
from pms_registry.core import RegistryCore

# scrypt's interactive-login cost (RFC 7914 §2 suggests N=2^14 for it): ~20 ms a check.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True)
class FirmwareImage:
    sha256: str
    version: str
    size: int
    min_version: str | None
    key_id: str
    manifest: dict[str, Any]
    uploaded_at: datetime
    uploaded_by: str | None


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    derived = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)  # type: ignore[arg-type]
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(derived).decode()


def password_matches(password: str, stored: str) -> bool:
    kind, _, rest = stored.partition("$")
    salt_text, _, derived_text = rest.partition("$")
    if kind != "scrypt" or not salt_text or not derived_text:
        return False
    expected = hash_password(password, base64.b64decode(salt_text))
    return hmac.compare_digest(expected.encode(), stored.encode())


class Firmware(RegistryCore):
    # ---- images --------------------------------------------------------------------------------
    def add_firmware_image(self, manifest: dict[str, Any], at: datetime, uploaded_by: str | None) -> bool:
        """Record an image by its digest; False when that digest was already there (nothing changes)."""
        sha256 = str(manifest["sha256"])
        with self._tx() as conn:
            if conn.execute(select(t.firmware_images.c.sha256).where(t.firmware_images.c.sha256 == sha256)) \
                    .first() is not None:
                return False
            conn.execute(insert(t.firmware_images).values(
                sha256=sha256, version=str(manifest["version"]), size=int(manifest["size"]),
                min_version=manifest.get("min_version"), key_id=str(manifest["key_id"]), manifest=manifest,
                uploaded_at=at, uploaded_by=uploaded_by))
        return True

    def firmware_image(self, sha256: str) -> FirmwareImage | None:
        with self._tx() as conn:
            row = conn.execute(select(t.firmware_images).where(t.firmware_images.c.sha256 == sha256)) \
                .mappings().first()
        return None if row is None else FirmwareImage(**row)

    def firmware_images(self) -> list[FirmwareImage]:
        """Every image, newest upload first."""
        with self._tx() as conn:
            rows = conn.execute(select(t.firmware_images).order_by(t.firmware_images.c.uploaded_at.desc(),
                                                                   t.firmware_images.c.version.desc())).mappings()
            return [FirmwareImage(**row) for row in rows]

    # ---- gateways' login hashes ----------------------------------------------------------------
    def set_gateway_password(self, gateway_id: str, password: str, at: datetime) -> None:
        """Keep a salted hash of the broker password just issued to `gateway_id` (at every claim)."""
        hashed = hash_password(password)
        table = t.gateway_login_secrets
        with self._tx() as conn:
            done = conn.execute(update(table).where(table.c.gateway_id == gateway_id)
                                .values(password_hash=hashed, set_at=at)).rowcount
            if not done:
                conn.execute(insert(table).values(gateway_id=gateway_id, password_hash=hashed, set_at=at))

    def forget_gateway_password(self, gateway_id: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(t.gateway_login_secrets).where(t.gateway_login_secrets.c.gateway_id == gateway_id))

    def gateway_password_matches(self, gateway_id: str, password: str) -> bool:
        """Whether `password` is the gateway's current broker password and its login is active (a login
        whose revocation was asked for is refused at once, before the broker has carried it out)."""
        with self._tx() as conn:
            stored = conn.execute(select(t.gateway_login_secrets.c.password_hash)
                                  .where(t.gateway_login_secrets.c.gateway_id == gateway_id)).scalar()
            state = conn.execute(select(t.broker_logins.c.state)
                                 .where(t.broker_logins.c.gateway_id == gateway_id)).scalar()
        if stored is None or state != "active":
            return False
        return password_matches(password, stored)
