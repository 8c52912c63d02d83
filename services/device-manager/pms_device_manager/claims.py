"""The cloud side of zero-config provisioning: claims answered, broker logins made and revoked.

`ClaimHandler.handle` takes one claim (its topic's client id and payload) and returns the answer:
refused with a reason (unknown serial, wrong proof, stale, replayed nonce, wrong client id, blocked
serial, rate limited), or accepted, with the gateway's new broker login sealed to its factory secret
(pms_common.provisioning). Every refusal is counted by reason (pms_device_manager_claims_total); the
log and the event log get one line per episode, not one per claim: a gateway retrying a refused claim
(a wrong secret, a blocked serial, a flood) is logged once per serial and reason, again at most every
REFUSAL_RELOG_S while it keeps trying, and afresh once it has been accepted. `ClaimService` is the
MQTT adapter: it subscribes to `pms/v1/provision/+/claim` and publishes the answers.
`RevocationExecutor` carries out the revocation requests left in the registry (unbinding,
replacing) within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiomqtt
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from pms_common import timeutil, topics
from pms_common.broker_admin import BrokerAdmin, BrokerAdminError
from pms_common.contract_reader import ContractReader
from pms_common.mqtt import Backoff, BrokerAddress, run_connected
from pms_common.provisioning import (
    Claim,
    ClaimAnswer,
    ClaimCredentials,
    ClaimRefused,
    refusal,
    seal_answer,
    verify_claim,
)
from pms_registry import Registry, RegistryError

log = logging.getLogger(__name__)

CLAIMS = Counter("pms_device_manager_claims_total", "Claims answered, by outcome (accepted or the refusal reason)",
                 ["outcome"])
CLAIM_SECONDS = Histogram("pms_device_manager_claim_seconds", "Time to answer an accepted claim")
REVOCATIONS = Counter("pms_device_manager_revocations_total", "Revocation requests carried out, by outcome",
                      ["outcome"])
UNKNOWN_FIELDS = Counter("pms_device_manager_claim_unknown_fields_total",
                         "Claims read with fields this version does not know (ignored)", ["message"])
READER = ContractReader("device-manager claims", UNKNOWN_FIELDS)
# A refusal repeated by the same serial (or client id) for the same reason is logged again after this long.
REFUSAL_RELOG_S = 3600.0


@dataclass
class TokenBucket:
    """`rate_per_s` tokens a second up to `burst`; each claim takes one (sans-IO: the caller gives the time)."""

    rate_per_s: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class ClaimLimits:
    """Per serial and overall; a flooding serial empties its own bucket before it touches the fleet's."""

    per_serial_rate_s: float
    per_serial_burst: float
    total_rate_s: float
    total_burst: float
    monotonic: Callable[[], float] = time.monotonic
    _serials: dict[str, TokenBucket] = field(default_factory=dict)
    _total: TokenBucket | None = None

    def check(self, serial: str) -> str | None:
        """None when the claim may go on; else which limit it hit ("serial" or "overall")."""
        now = self.monotonic()
        if len(self._serials) > 100_000:  # forget full buckets of serials long quiet (a flood of made-up serials)
            self._serials = {k: b for k, b in self._serials.items() if b.tokens < b.burst}
        bucket = self._serials.setdefault(serial, TokenBucket(self.per_serial_rate_s, self.per_serial_burst))
        if not bucket.take(now):
            return "serial"
        if self._total is None:
            self._total = TokenBucket(self.total_rate_s, self.total_burst)
        if not self._total.take(now):
            return "overall"
        return None


class ClaimHandler:
    def __init__(self, registry: Registry, admin: BrokerAdmin, limits: ClaimLimits, *,
                 gateway_mqtt_url: str | None = None) -> None:
        self.registry = registry
        self.admin = admin
        self.limits = limits
        self.gateway_mqtt_url = gateway_mqtt_url
        # (serial or client id, reason) of refusal episodes logged → when (limits.monotonic), with the repeats since.
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    async def handle(self, client_id: str, payload: bytes, now: datetime | None = None) -> ClaimAnswer:
        now = now or timeutil.now_jst()
        started = time.monotonic()
        try:
            claim = READER.parse(Claim, payload)
        except ValidationError as exc:
            refused = ClaimRefused("bad_claim", f"the claim on {client_id} breaks the contract: "
                                                f"{exc.errors()[0]['msg']}")
            await self._refused(None, refused, now, client_id)
            return refusal(None, refused, now)
        try:
            answer = await self._accept(claim, client_id, now)
        except ClaimRefused as refused:
            await self._refused(claim, refused, now, client_id)
            return refusal(claim, refused, now)
        CLAIMS.labels("accepted").inc()
        CLAIM_SECONDS.observe(time.monotonic() - started)
        self._accepted(claim.serial)
        return answer

    async def _accept(self, claim: Claim, client_id: str, now: datetime) -> ClaimAnswer:
        limited = self.limits.check(claim.serial)
        if limited is not None:
            which = f"of serial {claim.serial}" if limited == "serial" else "from all gateways at once"
            raise ClaimRefused("rate_limited", f"too many claims {which}; try again later")
        factory = await asyncio.to_thread(self.registry.factory_gateway, claim.serial)
        if factory is None:
            raise ClaimRefused("unknown_serial", f"serial {claim.serial} is not in the factory list")
        if factory.blocked:
            raise ClaimRefused("blocked", f"serial {claim.serial} may not claim: {factory.blocked_reason}")

        def nonce_seen(nonce: str) -> bool:
            return self.registry.claim_nonce_seen(claim.serial, nonce, now)

        # verify_claim asks about the nonce (a registry write) only once the proof holds.
        await asyncio.to_thread(verify_claim, claim, factory.keys, topic_client_id=client_id, now=now,
                                nonce_seen=nonce_seen)
        try:
            login = await self.admin.create_gateway_login(factory.gateway_id)
        except BrokerAdminError as exc:
            log.error("claims: no broker login made for %s: %s", factory.gateway_id, exc)
            raise ClaimRefused("unavailable", "the cloud could not make this gateway's broker login now; "
                                              "try again later") from exc
        await asyncio.to_thread(self.registry.record_claim, claim.serial, now)
        # The broker names the login after the gateway (username = gateway id, both brokers); its hash
        # lets the API authenticate the gateway's image downloads with the same credentials.
        await asyncio.to_thread(self.registry.set_gateway_password, factory.gateway_id, login.password, now)
        rotated = factory.claims_total > 0
        await asyncio.to_thread(
            self.registry.record_info_event, kind="gateway_claimed", at=now, gateway_id=factory.gateway_id,
            message=f"gateway {factory.gateway_id} (serial {claim.serial}, firmware {claim.firmware or 'unknown'}) "
                    f"claimed its identity{'; its broker login was rotated' if rotated else ''}",
            params={"gateway_id": factory.gateway_id, "serial": claim.serial, "firmware": claim.firmware,
                    "rotated": rotated})
        log.info("claims: %s claimed as %s%s", claim.serial, factory.gateway_id, " (login rotated)" if rotated else "")
        credentials = ClaimCredentials(gateway_id=factory.gateway_id, username=login.username,
                                       password=login.password, mqtt_url=self.gateway_mqtt_url)
        return seal_answer(claim, factory.keys, credentials, now)

    def _first_of_episode(self, claim: Claim | None, refused: ClaimRefused, client_id: str) -> tuple[bool, int]:
        """(whether this refusal opens an episode to log, the refusals since the last one logged)."""
        source = claim.serial if claim is not None else client_id
        if refused.reason == "rate_limited" and "all gateways" in refused.detail:
            source = "*"  # the fleet's limit: one episode, whichever serials hit it
        key, now = (source, refused.reason), self.limits.monotonic()
        logged = self._logged.get(key)
        if logged is not None and now - logged[0] < REFUSAL_RELOG_S:
            self._logged[key] = (logged[0], logged[1] + 1)
            return False, 0
        if len(self._logged) > 100_000:  # made-up serials by the thousand: forget the old episodes
            self._logged = {k: v for k, v in self._logged.items() if now - v[0] < REFUSAL_RELOG_S}
        self._logged[key] = (now, 0)
        return True, logged[1] if logged is not None else 0

    def _accepted(self, serial: str) -> None:
        """A serial's claim went through: its next refusal, whatever the reason, opens a new episode."""
        for key in [k for k in self._logged if k[0] == serial]:
            del self._logged[key]

    async def _refused(self, claim: Claim | None, refused: ClaimRefused, now: datetime, client_id: str) -> None:
        CLAIMS.labels(refused.reason).inc()
        first, repeats = self._first_of_episode(claim, refused, client_id)
        if not first:
            return
        again = f" (refused {repeats} more times for this since it was last logged)" if repeats else ""
        log.warning("claims: refused a claim on %s (%s): %s%s", client_id, refused.reason, refused.detail, again)
        gateway_id = None
        if claim is not None and refused.reason not in ("unknown_serial", "rate_limited"):
            found = await asyncio.to_thread(self.registry.factory_gateway, claim.serial)
            gateway_id = found.gateway_id if found is not None else None
        try:
            message = f"claim refused ({refused.reason}): {refused.detail}{again}"
            await asyncio.to_thread(self.registry.record_info_event, kind="claim_refused", at=now,
                                    gateway_id=gateway_id, message=message,
                                    params={"reason": refused.reason, "detail": refused.detail})
        except RegistryError as exc:
            log.error("claims: the refusal could not be logged as an event: %s", exc)


class ClaimService:
    """Subscribes to every claim and publishes each answer to its client id's answer topic."""

    def __init__(self, handler: ClaimHandler, broker: BrokerAddress, client_id: str) -> None:
        self.handler = handler
        self.broker = broker
        self.client_id = client_id
        self.subscribed = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()

        async def session() -> None:
            async with self.broker.client(identifier=self.client_id, clean_session=True) as client:
                backoff.reset()
                await client.subscribe(topics.ALL_CLAIMS, qos=1)
                self.subscribed.set()
                consume = asyncio.create_task(self._consume(client))
                try:
                    await stop.wait()
                finally:
                    self.subscribed.clear()
                    consume.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await consume

        await run_connected("device-manager claims", session, backoff=backoff)

    async def _consume(self, client: aiomqtt.Client) -> None:
        async with asyncio.TaskGroup() as group:
            async for message in client.messages:
                client_id = topics.client_id_of_claim_topic(str(message.topic))
                if client_id is None or not isinstance(message.payload, bytes):
                    continue
                # Claims are answered concurrently: making a login is a broker round trip.
                group.create_task(self._answer(client, client_id, message.payload))

    async def _answer(self, client: aiomqtt.Client, client_id: str, payload: bytes) -> None:
        try:
            answer = await self.handler.handle(client_id, payload)
        except RegistryError as exc:
            log.error("claims: registry failure while answering %s: %s", client_id, exc)
            answer = refusal(None, ClaimRefused("unavailable", "the cloud cannot answer claims now; try again later"),
                             timeutil.now_jst())
        await client.publish(topics.provision_answer(client_id), answer.to_json(), qos=1)


class RevocationExecutor:
    """Carries out pending revocation requests: polls the registry (every service may ask), revokes at the broker."""

    def __init__(self, registry: Registry, admin: BrokerAdmin, *, poll_s: float = 0.5,
                 announce_offline: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.registry = registry
        self.admin = admin
        self.poll_s = poll_s
        self._announce_offline = announce_offline

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.run_once()
            except RegistryError as exc:
                log.error("revocations: registry unavailable: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)

    async def run_once(self) -> int:
        done = 0
        for request in await asyncio.to_thread(self.registry.pending_revocations):
            try:
                await self.admin.revoke_gateway_login(request.gateway_id)
            except BrokerAdminError as exc:
                REVOCATIONS.labels("failed").inc()
                log.error("revocations: %s not revoked yet (%s): %s", request.gateway_id, request.reason, exc)
                await asyncio.to_thread(self.registry.note_revocation_failure, request.request_id, str(exc))
                continue
            await asyncio.to_thread(self.registry.mark_revoked, request.request_id, timeutil.now_jst())
            REVOCATIONS.labels("revoked").inc()
            log.info("revocations: %s revoked (%s)", request.gateway_id, request.reason)
            if self._announce_offline is not None:
                try:
                    await self._announce_offline(request.gateway_id)
                except aiomqtt.MqttError as exc:  # its heartbeats stop: presence follows within its rule
                    log.warning("revocations: %s offline status not published: %s", request.gateway_id, exc)
            done += 1
        return done
