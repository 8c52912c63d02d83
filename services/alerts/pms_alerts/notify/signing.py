"""Webhook signatures (sans-IO): the headers a delivery carries and the check a receiver makes.

The signed text is `{timestamp}.{body}` (the raw body bytes), HMAC-SHA256 with each secret the
channel holds. During a rotation a channel holds two secrets (the new one first): the signature
header then carries one `v1=<hex>` per secret, comma-separated, so a receiver that still knows only
the old secret, or already only the new one, verifies either way. The timestamp bounds a replay in
time (the receiver refuses a stale one); the idempotency key, stable across retries of one
delivery, lets the receiver refuse the same delivery twice within that window."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Container, Mapping, Sequence

from pms_common.errors import PmsError

TIMESTAMP_HEADER = "X-PMS-Timestamp"
SIGNATURE_HEADER = "X-PMS-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DELIVERY_HEADER = "X-PMS-Delivery"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


class SignatureError(PmsError, ValueError):
    """A webhook request that must not be acted on: unsigned, wrongly signed, stale or a replay."""


class ReplayedDelivery(SignatureError):
    """A correctly signed, fresh request whose idempotency key was already accepted (answer 409)."""


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of `{timestamp}.{body}` with `secret`, as lowercase hex."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(*, body: bytes, secrets: Sequence[str], timestamp: int, idempotency_key: str,
                   delivery_id: int) -> dict[str, str]:
    """The headers of one attempt: a fresh timestamp and its signatures; the same key every attempt."""
    if not secrets:
        raise SignatureError("a webhook channel needs at least one secret to sign with")
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: ",".join(f"{SCHEME}={signature(secret, timestamp, body)}" for secret in secrets),
        IDEMPOTENCY_HEADER: idempotency_key,
        DELIVERY_HEADER: str(delivery_id),
    }


def verify(*, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float,
           tolerance_s: float = DEFAULT_TOLERANCE_S, seen_keys: Container[str] = ()) -> str:
    """A receiver's check of one request; returns its idempotency key (remember it for `tolerance_s`).

    `secrets` are the ones the receiver holds (two during its own rotation), `now` its clock in unix
    seconds, `seen_keys` the keys it accepted within the window. Raises SignatureError saying why
    the request is refused."""
    lowered = {name.lower(): value for name, value in headers.items()}
    raw_timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    raw_signatures = lowered.get(SIGNATURE_HEADER.lower())
    key = lowered.get(IDEMPOTENCY_HEADER.lower())
    if raw_timestamp is None or raw_signatures is None or not key:
        raise SignatureError(f"the request lacks {TIMESTAMP_HEADER}, {SIGNATURE_HEADER} or {IDEMPOTENCY_HEADER}")
    try:
        timestamp = int(raw_timestamp)
    except ValueError as exc:
        raise SignatureError(f"{TIMESTAMP_HEADER} {raw_timestamp!r} is not unix seconds") from exc
    offered = [part.strip().removeprefix(f"{SCHEME}=") for part in raw_signatures.split(",")
               if part.strip().startswith(f"{SCHEME}=")]
    expected = [signature(secret, timestamp, body) for secret in secrets]
    if not any(hmac.compare_digest(mine, theirs) for mine in expected for theirs in offered):
        raise SignatureError("no signature matches a secret this receiver holds")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"the timestamp is {now - timestamp:.0f} s away from now, beyond {tolerance_s:.0f} s")
    if key in seen_keys:
        raise ReplayedDelivery(f"delivery {key} was already accepted (a replay)")
    return key
