"""The claim protocol of zero-config provisioning, sans-IO: messages, the proof, the sealed answer.

A gateway leaves the factory with a serial and a factory secret. On its first boot it publishes a
`Claim` on `pms/v1/provision/{client_id}/claim` (client id `claim-{serial}`, with the shared
provisioning login) and device-manager answers a `ClaimAnswer` on `.../answer`:

- Both sides derive two keys from the factory secret with HKDF-SHA256 (salt: the serial; different
  `info` labels): the *proof key* and the *answer key*. The cloud's registry keeps only these.
- The claim carries a fresh random nonce, the time it was made and
  proof = HMAC-SHA256(proof key, canonical bytes of serial, client id, nonce, time, firmware):
  never the secret. The cloud accepts it within ±300 s of its own clock and once per nonce.
- An accepted answer carries the gateway's credentials encrypted with AES-GCM under the answer key,
  its associated data binding the serial and the claim's nonce: a device that takes over the client
  id (the provisioning login is shared) reads nothing, and an answer to an older claim does not open.

Exceptions: `ClaimRefused` (the cloud refuses a claim; its `reason` goes into the answer) and
`AnswerUnreadable` (the gateway cannot open an answer: wrong key, tampered, or not to its claim).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, Field, ValidationError

from pms_common.errors import PmsError
from pms_common.messages import TOLERANT, AwareDatetime, GatewayId, Message

CLAIM_WINDOW = timedelta(seconds=300)
# A serial becomes part of a gateway id (`gw-` + 61) and a client id; what a label can carry.
SERIAL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:/ -]{0,60}"
_NONCE_PATTERN = r"^[0-9a-f]{32,64}$"
_PROOF_INFO = b"pms/v1 provisioning: claim proof key"
_ANSWER_INFO = b"pms/v1 provisioning: answer key"
_KEY_BYTES = 32
_GCM_NONCE_BYTES = 12
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

RefusalReason = Literal["unknown_serial", "bad_proof", "stale", "replayed", "client_id_mismatch", "blocked",
                        "rate_limited", "bad_claim", "unavailable"]


class ClaimRefused(PmsError):
    """The cloud refuses a claim: `reason` is the answer's machine-readable reason, the message a sentence."""

    def __init__(self, reason: RefusalReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: RefusalReason = reason
        self.detail = detail


class AnswerUnreadable(PmsError):
    """The gateway cannot open an answer: sealed under another key, tampered with, or to another claim."""


# ---- names ---------------------------------------------------------------------------------------
def _sanitised(serial: str) -> str:
    return re.sub(r"[^a-z0-9._-]", "-", serial.lower())


def gateway_id_for_serial(serial: str) -> str:
    """The gateway id fixed at import: `gw-` + the serial lower-cased, [^a-z0-9._-] → `-`."""
    return "gw-" + _sanitised(serial)


def claim_client_id(serial: str) -> str:
    """The MQTT client id a gateway claims with (the provisioning login may touch only its own topics)."""
    return "claim-" + _sanitised(serial)


def normalise_claim_code(code: str) -> str:
    """Labels are typed in by people: case, spaces and dashes do not count."""
    return re.sub(r"[\s-]", "", code).upper()


def hash_claim_code(code: str) -> str:
    """What the registry stores of a claim code (it is looked up by it, so the hash is unsalted).

    A claim code only binds a claimed gateway to a plant by an operator who holds the device; whoever
    could read the registry to brute-force one could bind gateways directly."""
    return hashlib.sha256(b"pms claim code\n" + normalise_claim_code(code).encode()).hexdigest()


# ---- keys ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DerivedKeys:
    """The two keys derived from a factory secret; the registry stores these, never the secret."""

    proof_key: bytes
    answer_key: bytes

    @classmethod
    def from_hex(cls, proof_key: str, answer_key: str) -> DerivedKeys:
        return cls(bytes.fromhex(proof_key), bytes.fromhex(answer_key))


def _hkdf(secret: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=salt, info=info).derive(secret)


def derive_keys(serial: str, factory_secret: str) -> DerivedKeys:
    """HKDF-SHA256 of the factory secret, salted with the serial (one leaked key pair never serves two
    devices that happen to share a secret)."""
    if not factory_secret:
        raise ValueError("a factory secret cannot be empty")
    secret, salt = factory_secret.encode(), serial.encode()
    return DerivedKeys(_hkdf(secret, salt, _PROOF_INFO), _hkdf(secret, salt, _ANSWER_INFO))


# ---- messages ------------------------------------------------------------------------------------
class Claim(Message):
    """pms/v1/provision/{client_id}/claim: a gateway asks for its identity (gateway → cloud)."""

    serial: str = Field(pattern=rf"^{SERIAL_PATTERN}$")
    client_id: str = Field(max_length=128)
    nonce: str = Field(pattern=_NONCE_PATTERN)
    at: AwareDatetime
    firmware: str | None = Field(default=None, max_length=200)
    proof: str = Field(pattern=r"^[0-9a-f]{64}$")


class ClaimCredentials(BaseModel):
    """What an accepted answer carries, sealed; the collector keeps the same fields in its credentials file."""

    model_config = TOLERANT

    gateway_id: GatewayId
    username: str
    password: str
    mqtt_url: str | None = None  # the broker the gateway should use as itself; None: the one it claimed on


class ClaimAnswer(Message):
    """pms/v1/provision/{client_id}/answer (cloud → gateway): refused with a reason, or the sealed credentials."""

    serial: str | None = None
    nonce: str | None = None  # the claim's; None only when the claim could not be read at all
    ok: bool
    reason: RefusalReason | None = None
    detail: str | None = None
    sealed: str | None = None  # base64(12-byte AES-GCM nonce ‖ ciphertext ‖ tag) of ClaimCredentials JSON
    at: AwareDatetime


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def _claim_bytes(serial: str, client_id: str, nonce: str, at: datetime, firmware: str | None) -> bytes:
    # Integer microseconds, not the ISO text: the proof must survive any valid re-serialisation of `at`.
    fields = ("pms/v1 claim", serial, client_id, nonce, str(_micros(at)), firmware or "")
    return "\n".join(fields).encode()


def _proof(key: bytes, claim: Claim) -> str:
    signed = _claim_bytes(claim.serial, claim.client_id, claim.nonce, claim.at, claim.firmware)
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def make_claim(serial: str, factory_secret: str, at: datetime, *, firmware: str | None = None,
               nonce: str | None = None) -> Claim:
    """A claim with a fresh nonce (a retry makes a new claim, never resends an old one)."""
    keys = derive_keys(serial, factory_secret)
    client_id = claim_client_id(serial)
    nonce = nonce or secrets.token_hex(16)
    unsigned = Claim(serial=serial, client_id=client_id, nonce=nonce, at=at, firmware=firmware, proof="0" * 64)
    return unsigned.model_copy(update={"proof": _proof(keys.proof_key, unsigned)})


def verify_claim(claim: Claim, keys: DerivedKeys, *, topic_client_id: str, now: datetime,
                 nonce_seen: Callable[[str], bool]) -> None:
    """Raise ClaimRefused unless the claim is this serial's, fresh and new.

    `nonce_seen(nonce)` records the nonce and says whether it had been seen before; it is asked last,
    so that a forged claim cannot use up a nonce."""
    expected_client = claim_client_id(claim.serial)
    if claim.client_id != expected_client or topic_client_id != expected_client:
        raise ClaimRefused("client_id_mismatch", f"serial {claim.serial} claims as client id {expected_client}, "
                                                 f"not {topic_client_id}")
    expected = _proof(keys.proof_key, claim)
    if not hmac.compare_digest(expected, claim.proof):
        raise ClaimRefused("bad_proof", f"the claim of serial {claim.serial} carries a wrong proof of its factory "
                                        "secret")
    skew = abs(now - claim.at)
    if skew > CLAIM_WINDOW:
        raise ClaimRefused("stale", f"the claim of serial {claim.serial} was made {skew.total_seconds():.0f} s from "
                                    f"the cloud's clock, more than {CLAIM_WINDOW.total_seconds():.0f} s")
    if nonce_seen(claim.nonce):
        raise ClaimRefused("replayed", f"the claim of serial {claim.serial} reuses a nonce already seen")


def _aad(serial: str, claim_nonce: str) -> bytes:
    return f"pms/v1 claim answer\n{serial}\n{claim_nonce}".encode()


def seal_answer(claim: Claim, keys: DerivedKeys, credentials: ClaimCredentials, at: datetime) -> ClaimAnswer:
    """The accepted answer to `claim`: the credentials encrypted to the factory secret and bound to this claim."""
    gcm_nonce = os.urandom(_GCM_NONCE_BYTES)
    sealed = AESGCM(keys.answer_key).encrypt(gcm_nonce, credentials.model_dump_json().encode(),
                                             _aad(claim.serial, claim.nonce))
    return ClaimAnswer(serial=claim.serial, nonce=claim.nonce, ok=True, at=at,
                       sealed=base64.b64encode(gcm_nonce + sealed).decode())


def refusal(claim: Claim | None, refused: ClaimRefused, at: datetime) -> ClaimAnswer:
    return ClaimAnswer(serial=claim.serial if claim else None, nonce=claim.nonce if claim else None, ok=False,
                       reason=refused.reason, detail=refused.detail, at=at)


def open_answer(answer: ClaimAnswer, claim: Claim, factory_secret: str) -> ClaimCredentials:
    """The credentials in an accepted answer to `claim`; AnswerUnreadable when they are not for it."""
    if not answer.ok or answer.sealed is None:
        raise AnswerUnreadable("the answer is a refusal and carries no credentials")
    try:
        blob = base64.b64decode(answer.sealed, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AnswerUnreadable("the answer's sealed credentials are not base64") from exc
    keys = derive_keys(claim.serial, factory_secret)
    try:
        plain = AESGCM(keys.answer_key).decrypt(blob[:_GCM_NONCE_BYTES], blob[_GCM_NONCE_BYTES:],
                                                _aad(claim.serial, claim.nonce))
    except (InvalidTag, ValueError) as exc:
        raise AnswerUnreadable("the answer does not open with this gateway's factory secret for this claim "
                               "(another key, tampered, or an answer to another claim)") from exc
    try:
        return ClaimCredentials.model_validate_json(plain)
    except ValidationError as exc:
        raise AnswerUnreadable(f"the sealed credentials are malformed: {exc.errors()[0]['msg']}") from exc
