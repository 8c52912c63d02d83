"""The gateway's first boot: claim an identity with the factory secret, keep it, run as itself.

With `gateway_serial` and `factory_secret` set, the collector connects with the shared provisioning
login of `mqtt_url` as client id `claim-{serial}`, publishes a claim (pms_common.provisioning) and
waits for the answer; no answer in time, or the cloud unavailable → a fresh claim after a backoff;
another refusal → its reason is logged and the claim made again later. The credentials go to
`credentials_path` (written whole or not at all, mode 0600), and later starts use that file without
claiming. When the broker refuses the stored login (revoked on unbinding, rotated), the collector
claims again (see main.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import ValidationError

from pms_collector.settings import CollectorSettings
from pms_collector.uplink import SUBSCRIPTION_QOS
from pms_common import timeutil, topics
from pms_common.mqtt import Backoff, BrokerAddress, is_broker_failure
from pms_common.provisioning import AnswerUnreadable, ClaimAnswer, ClaimCredentials, make_claim, open_answer

log = logging.getLogger(__name__)


def load_credentials(path: Path) -> ClaimCredentials | None:
    """The kept identity, or None when there is none (a damaged file is logged and claimed anew)."""
    try:
        return ClaimCredentials.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        log.error("claim: the credentials file %s cannot be used (%s); claiming anew", path, exc)
        return None


def save_credentials(path: Path, credentials: ClaimCredentials) -> None:
    """Write the file whole or not at all (a temporary file renamed over it), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            json.dump(credentials.model_dump(mode="json", exclude_none=True), out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def as_itself(settings: CollectorSettings, credentials: ClaimCredentials) -> CollectorSettings:
    """The settings with the claimed identity: its gateway id, and its login in the broker URL."""
    parts = urlsplit(credentials.mqtt_url or settings.mqtt_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    login = f"{quote(credentials.username, safe='')}:{quote(credentials.password, safe='')}@"
    url = urlunsplit((parts.scheme, login + host, parts.path, parts.query, parts.fragment))
    return settings.model_copy(update={"gateway_id": credentials.gateway_id, "mqtt_url": url})


async def claim_once(settings: CollectorSettings) -> ClaimCredentials | ClaimAnswer | None:
    """One claim: the credentials, the refusal, or None when no answer came in time."""
    assert settings.gateway_serial is not None and settings.factory_secret is not None
    secret = settings.factory_secret.get_secret_value()
    claim = make_claim(settings.gateway_serial, secret, timeutil.now_jst(), firmware=settings.firmware)
    broker = BrokerAddress.parse(settings.mqtt_url)
    async with broker.client(identifier=claim.client_id, clean_session=True) as client:
        await client.subscribe(topics.provision_answer(claim.client_id), qos=SUBSCRIPTION_QOS)
        await client.publish(topics.provision_claim(claim.client_id), claim.to_json(), qos=1)
        log.info("claim: serial %s claimed its identity as %s; waiting for the answer", claim.serial, claim.client_id)
        try:
            async with asyncio.timeout(settings.claim_timeout_s):
                async for message in client.messages:
                    if not isinstance(message.payload, bytes):
                        continue
                    try:
                        answer = ClaimAnswer.model_validate_json(message.payload)
                    except ValidationError:
                        log.warning("claim: ignoring an answer that breaks the contract")
                        continue
                    if answer.nonce not in (claim.nonce, None):
                        continue  # an answer to an earlier claim
                    if not answer.ok:
                        return answer
                    try:
                        return open_answer(answer, claim, secret)
                    except AnswerUnreadable as exc:
                        log.warning("claim: ignoring an answer: %s", exc)
        except TimeoutError:
            return None
    return None


async def claim_identity(settings: CollectorSettings, stop: asyncio.Event) -> ClaimCredentials | None:
    """Claim until the identity is granted and kept (None when stopped first)."""
    backoff = Backoff(initial_s=2.0, maximum_s=120.0)
    while not stop.is_set():
        wait = 0.0
        try:
            outcome = await claim_once(settings)
        except Exception as exc:
            if not is_broker_failure(exc):
                raise
            wait = backoff.next_delay()
            log.warning("claim: the broker cannot be reached for the claim (%s); trying again in %.0f s", exc, wait)
        else:
            if isinstance(outcome, ClaimCredentials):
                save_credentials(settings.credentials_path, outcome)
                log.info("claim: granted the identity %s, kept in %s", outcome.gateway_id, settings.credentials_path)
                return outcome
            if outcome is None:
                wait = backoff.next_delay()
                log.warning("claim: no answer within %.0f s; claiming again in %.0f s", settings.claim_timeout_s, wait)
            elif outcome.reason == "unavailable":
                # The cloud could not answer this time (its broker admin failed): a passing fault, like
                # no answer at all, so the backoff rather than the long wait after a real refusal.
                wait = backoff.next_delay()
                log.warning("claim: the cloud is unavailable (%s); claiming again in %.0f s", outcome.detail, wait)
            else:
                wait = settings.claim_refused_retry_s
                log.error("claim: refused (%s): %s; claiming again in %.0f s", outcome.reason, outcome.detail, wait)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
    return None


async def provisioned(settings: CollectorSettings, stop: asyncio.Event, *,
                      fresh: bool = False) -> CollectorSettings | None:
    """The settings to run with: as configured without a serial; else as the kept or newly claimed
    identity (`fresh`: claim even though a file is kept). None when stopped before an identity came."""
    if settings.gateway_serial is None:
        return settings
    credentials = None if fresh else load_credentials(settings.credentials_path)
    if credentials is None:
        credentials = await claim_identity(settings, stop)
        if credentials is None:
            return None
    else:
        log.info("claim: running as %s from %s", credentials.gateway_id, settings.credentials_path)
    return as_itself(settings, credentials)
