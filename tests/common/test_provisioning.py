"""The claim protocol: proof, tampering, replay, the time window, wrong keys and the answer's binding."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

import pytest

from pms_common import topics
from pms_common.provisioning import (
    AnswerUnreadable,
    Claim,
    ClaimAnswer,
    ClaimCredentials,
    ClaimRefused,
    claim_client_id,
    derive_keys,
    gateway_id_for_serial,
    hash_claim_code,
    make_claim,
    open_answer,
    refusal,
    seal_answer,
    verify_claim,
)

SERIAL, SECRET = "SA-M0/0042", "factory-secret-0042-abcdef"
CREDENTIALS = ClaimCredentials(gateway_id="gw-sa-m0-0042", username="gw-sa-m0-0042", password="p" * 24)


def never_seen(_nonce: str) -> bool:
    return False


def verify(claim: Claim, now: datetime, *, secret: str = SECRET, client_id: str | None = None,
           seen: set[str] | None = None) -> None:
    def nonce_seen(nonce: str) -> bool:
        if seen is None:
            return False
        known = nonce in seen
        seen.add(nonce)
        return known

    verify_claim(claim, derive_keys(claim.serial, secret), topic_client_id=client_id or claim.client_id, now=now,
                 nonce_seen=nonce_seen)


def refused_reason(claim: Claim, now: datetime, **kwargs: object) -> str:
    with pytest.raises(ClaimRefused) as refused:
        verify(claim, now, **kwargs)  # type: ignore[arg-type]
    assert SERIAL in refused.value.detail  # a sentence naming the serial
    return refused.value.reason


def test_names_follow_the_shared_rule() -> None:
    assert gateway_id_for_serial(SERIAL) == "gw-sa-m0-0042"
    assert claim_client_id("AB 12.x_y") == "claim-ab-12.x_y"
    assert topics.provision_claim("claim-x") == "pms/v1/provision/claim-x/claim"
    assert topics.client_id_of_claim_topic("pms/v1/provision/claim-x/claim") == "claim-x"
    assert topics.client_id_of_claim_topic("pms/v1/provision/claim-x/answer") is None
    assert hash_claim_code("abcd-efgh") == hash_claim_code(" ABCD EFGH") != hash_claim_code("ABCD-EFGI")


def test_the_two_keys_differ_and_depend_on_serial_and_secret() -> None:
    keys = derive_keys(SERIAL, SECRET)
    assert keys.proof_key != keys.answer_key and len(keys.proof_key) == len(keys.answer_key) == 32
    assert derive_keys(SERIAL, SECRET) == keys
    assert derive_keys("OTHER", SECRET).proof_key != keys.proof_key
    assert derive_keys(SERIAL, SECRET + "x").answer_key != keys.answer_key


def test_a_fresh_claim_verifies_and_never_carries_the_secret(noon: datetime) -> None:
    claim = make_claim(SERIAL, SECRET, noon, firmware="pms-collector/0.1.0")
    assert SECRET not in claim.model_dump_json() and claim.v == 1
    verify(claim, noon + timedelta(seconds=299))
    verify(claim, noon - timedelta(seconds=299))
    # Through the wire and back (another spelling of the same instant) it still verifies.
    wire = json.loads(claim.to_json())
    wire["at"] = claim.at.astimezone(tz=None).isoformat()
    verify(Claim.model_validate(wire), noon)
    assert make_claim(SERIAL, SECRET, noon).nonce != claim.nonce


@pytest.mark.parametrize("field, value", [("serial", "SA-M0/0043"), ("nonce", "0" * 32), ("firmware", "evil/1"),
                                          ("at", "2026-06-01T12:00:01+09:00")])
def test_a_tampered_claim_has_a_wrong_proof(noon: datetime, field: str, value: str) -> None:
    wire = json.loads(make_claim(SERIAL, SECRET, noon).to_json())
    wire[field] = value
    claim = Claim.model_validate(wire)
    if field == "serial":  # the forger claims its own client id too
        claim = claim.model_copy(update={"client_id": claim_client_id(value)})
        with pytest.raises(ClaimRefused) as refused:
            verify(claim, noon)
        assert refused.value.reason == "bad_proof"
        return
    assert refused_reason(claim, noon) == "bad_proof"


def test_a_wrong_secret_and_a_stale_claim_are_refused(noon: datetime) -> None:
    assert refused_reason(make_claim(SERIAL, "not the secret", noon), noon) == "bad_proof"
    assert refused_reason(make_claim(SERIAL, SECRET, noon), noon + timedelta(seconds=301)) == "stale"
    assert refused_reason(make_claim(SERIAL, SECRET, noon), noon - timedelta(seconds=301)) == "stale"


def test_a_replayed_claim_is_refused_and_a_forged_one_uses_no_nonce(noon: datetime) -> None:
    seen: set[str] = set()
    claim = make_claim(SERIAL, SECRET, noon)
    verify(claim, noon, seen=seen)
    assert refused_reason(claim, noon, seen=seen) == "replayed"
    forged = make_claim(SERIAL, "guess", noon)
    assert refused_reason(forged, noon, seen=seen) == "bad_proof"
    assert forged.nonce not in seen


def test_a_claim_from_another_client_id_is_refused(noon: datetime) -> None:
    claim = make_claim(SERIAL, SECRET, noon)
    with pytest.raises(ClaimRefused) as refused:
        verify(claim, noon, client_id="claim-someone-else")
    assert refused.value.reason == "client_id_mismatch"


def test_the_answer_opens_only_for_its_own_claim_and_secret(noon: datetime) -> None:
    claim = make_claim(SERIAL, SECRET, noon)
    answer = seal_answer(claim, derive_keys(SERIAL, SECRET), CREDENTIALS, noon)
    assert CREDENTIALS.password not in answer.model_dump_json()
    assert open_answer(ClaimAnswer.model_validate_json(answer.to_json()), claim, SECRET) == CREDENTIALS
    # A device that took over the client id does not hold the factory secret.
    with pytest.raises(AnswerUnreadable):
        open_answer(answer, claim, "another device's secret")
    # An answer to an earlier claim of the same gateway does not open for a newer one (AAD: serial + nonce).
    newer = make_claim(SERIAL, SECRET, noon + timedelta(seconds=5))
    with pytest.raises(AnswerUnreadable, match="another claim"):
        open_answer(answer, newer, SECRET)
    # Nor for another serial, even with the same secret.
    other = make_claim("SA-M0/0043", SECRET, noon, nonce=claim.nonce)
    with pytest.raises(AnswerUnreadable):
        open_answer(answer, other, SECRET)


def test_a_tampered_answer_does_not_open(noon: datetime) -> None:
    claim = make_claim(SERIAL, SECRET, noon)
    answer = seal_answer(claim, derive_keys(SERIAL, SECRET), CREDENTIALS, noon)
    blob = bytearray(base64.b64decode(answer.sealed or ""))
    blob[-1] ^= 1
    with pytest.raises(AnswerUnreadable):
        open_answer(answer.model_copy(update={"sealed": base64.b64encode(bytes(blob)).decode()}), claim, SECRET)
    with pytest.raises(AnswerUnreadable, match="base64"):
        open_answer(answer.model_copy(update={"sealed": "%%%"}), claim, SECRET)


def test_a_refusal_carries_a_reason_and_no_credentials(noon: datetime) -> None:
    claim = make_claim(SERIAL, SECRET, noon)
    answer = refusal(claim, ClaimRefused("unknown_serial", "serial SA-M0/0042 is not in the factory list"), noon)
    read = ClaimAnswer.model_validate_json(answer.to_json())
    assert (read.ok, read.reason, read.nonce, read.sealed) == (False, "unknown_serial", claim.nonce, None)
    with pytest.raises(AnswerUnreadable, match="refusal"):
        open_answer(read, claim, SECRET)


def test_messages_are_tolerant_of_fields_they_do_not_know(noon: datetime) -> None:
    wire = json.loads(make_claim(SERIAL, SECRET, noon).to_json())
    wire["future_field"] = 1
    verify(Claim.model_validate(wire), noon)
    assert ClaimCredentials.model_validate({**CREDENTIALS.model_dump(), "later": True}).gateway_id == "gw-sa-m0-0042"
