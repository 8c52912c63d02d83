"""Webhook signing: a known vector (computed with `openssl dgst -sha256 -hmac`), rotation, and the
receivers' check refusing what it must."""

from __future__ import annotations

import pytest

from pms_alerts.notify.signing import (
    ReplayedDelivery,
    SignatureError,
    signature,
    signed_headers,
    verify,
)

BODY = b'{"v":1}'
# printf '%s' '1700000000.{"v":1}' | openssl dgst -sha256 -hmac whsec_test
KNOWN_NEW = "42265a8d94c87e30011ad1a24b449a875c60aeb921c05bbabcbc41385e6d1919"
KNOWN_OLD = "54e823ada6d6ff5c5aef76ac8ad50d1d4e8933da69172a3d536162e4b471b9fd"


def test_signature_matches_the_known_vector() -> None:
    assert signature("whsec_test", 1_700_000_000, BODY) == KNOWN_NEW


def test_headers_carry_one_signature_per_secret_during_a_rotation() -> None:
    headers = signed_headers(body=BODY, secrets=["whsec_test", "whsec_old"], timestamp=1_700_000_000,
                             idempotency_key="k" * 64, delivery_id=7)
    assert headers["X-PMS-Signature"] == f"v1={KNOWN_NEW},v1={KNOWN_OLD}"
    assert headers["X-PMS-Timestamp"] == "1700000000"
    assert headers["Idempotency-Key"] == "k" * 64
    assert headers["X-PMS-Delivery"] == "7"


@pytest.mark.parametrize("receiver_secrets", [["whsec_test"], ["whsec_old"], ["other", "whsec_old"]])
def test_a_receiver_holding_either_secret_verifies(receiver_secrets: list[str]) -> None:
    headers = signed_headers(body=BODY, secrets=["whsec_test", "whsec_old"], timestamp=1_700_000_000,
                             idempotency_key="key-1", delivery_id=1)
    lowered = {name.lower(): value for name, value in headers.items()}  # HTTP servers lower-case names
    assert verify(body=BODY, headers=lowered, secrets=receiver_secrets, now=1_700_000_100) == "key-1"


def test_refusals_say_why() -> None:
    headers = signed_headers(body=BODY, secrets=["whsec_test"], timestamp=1_700_000_000,
                             idempotency_key="key-1", delivery_id=1)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(body=BODY, headers=headers, secrets=["whsec_wrong"], now=1_700_000_000)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(body=b'{"v":2}', headers=headers, secrets=["whsec_test"], now=1_700_000_000)
    with pytest.raises(SignatureError, match="beyond 300 s"):
        verify(body=BODY, headers=headers, secrets=["whsec_test"], now=1_700_000_301)
    with pytest.raises(ReplayedDelivery, match="already accepted"):
        verify(body=BODY, headers=headers, secrets=["whsec_test"], now=1_700_000_000, seen_keys={"key-1"})
    with pytest.raises(SignatureError, match="lacks"):
        verify(body=BODY, headers={}, secrets=["whsec_test"], now=1_700_000_000)
    with pytest.raises(SignatureError, match="needs at least one secret"):
        signed_headers(body=BODY, secrets=[], timestamp=1, idempotency_key="k", delivery_id=1)
