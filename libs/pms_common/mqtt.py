"""MQTT helpers: broker URLs, client construction and a reconnect loop with backoff and jitter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from pms_common.errors import PmsError

log = logging.getLogger(__name__)


class BrokerUrlError(PmsError, ValueError):
    """The broker URL cannot be used."""


class BrokerClient(aiomqtt.Client):
    """aiomqtt's client that also ends the connection of a CONNECT it gave up on.

    aiomqtt 2.5 raises "Operation timed out" when no CONNACK comes within its timeout (10 s), and
    leaves paho's socket open and read: the broker answers late (NATS in a reconnect storm, a slow
    mobile link), the connection lives on unused until paho's keepalive check ends it up to two
    keepalives later, the broker keeps a session that the next attempt with the same client id must
    replace, and its end is a "Future exception was never retrieved" in the log. A stop that cancels
    the connect leaves the same. Here such a connection is sent DISCONNECT and closed at once (MQTT's
    own clean end, so the broker publishes no will for an attempt nobody used). Not covered: a cancel
    while the TCP connect itself still runs in aiomqtt's executor thread (it opens the socket after)."""

    async def __aenter__(self) -> BrokerClient:
        try:
            await super().__aenter__()
        except MqttConnectError:
            raise  # a CONNACK that refuses: the broker closes the connection itself
        except BaseException:
            if self._connected.cancelled():
                # aiomqtt renews this future and frees its lock after a timeout, not after a cancel;
                # paho's end of the connection reads the future (a cancelled one raised inside paho,
                # and the socket stayed open).
                self._connected = asyncio.get_running_loop().create_future()
                if self._lock.locked():
                    self._lock.release()
            self._end_unanswered_connection()
            raise
        return self

    def _end_unanswered_connection(self) -> None:
        paho = self._client  # aiomqtt's paho client: the socket is paho's to close
        if paho.socket() is None:  # the TCP connect itself failed: nothing is open
            return
        # Written by aiomqtt's writer callback, after which paho closes the socket (and aiomqtt stops
        # reading it). Whatever that end sets on the disconnection future, nobody awaits it any more.
        self._disconnected.add_done_callback(_consume)
        paho.disconnect()


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


@dataclass(frozen=True, kw_only=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise BrokerUrlError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise BrokerUrlError(f"broker URL {url!r} names no host")
        tls = parts.scheme in ("mqtts", "ssl")
        try:
            port = parts.port
        except ValueError as exc:
            raise BrokerUrlError(f"broker URL {url!r} has a bad port") from exc
        if port == 0:
            raise BrokerUrlError(f"broker URL {url!r} has port 0")
        port = port or (8883 if tls else 1883)
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def client(
        self,
        *,
        identifier: str | None = None,
        will: aiomqtt.Will | None = None,
        clean_session: bool | None = None,
        keepalive: int = 30,
        max_queued_outgoing: int | None = None,
        inbound_queue: asyncio.Queue[aiomqtt.Message] | None = None,
        max_inflight: int | None = None,
    ) -> BrokerClient:
        """A client of this broker; `inbound_queue`, when given, is the queue aiomqtt fills with
        received messages (through its public `queue_type` parameter), so that a consumer can drain a
        burst with `get_nowait()` instead of one event-loop turn per message. `max_inflight` raises
        paho's window of QoS 1 publishes awaiting their PUBACK (20 by default), which a publisher of
        hundreds of acks at once would otherwise queue behind."""
        queue_type = None if inbound_queue is None else _the_queue(inbound_queue)
        return BrokerClient(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            will=will,
            clean_session=clean_session,
            keepalive=keepalive,
            tls_context=ssl.create_default_context() if self.tls else None,
            max_queued_outgoing_messages=max_queued_outgoing,
            queue_type=queue_type,
            max_inflight_messages=max_inflight,
        )


def _the_queue(queue: asyncio.Queue[aiomqtt.Message]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """A stand-in for a queue class that hands aiomqtt the queue its caller made."""

    def make(maxsize: int = 0) -> asyncio.Queue[aiomqtt.Message]:
        return queue

    return cast("type[asyncio.Queue[aiomqtt.Message]]", make)


def is_broker_failure(exc: BaseException) -> bool:
    """True for a lost or refused broker connection, also when it comes wrapped by a TaskGroup."""
    if isinstance(exc, aiomqtt.MqttError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(aiomqtt.MqttError)
        return rest is None
    return False


class SubscriptionRefused(aiomqtt.MqttError):
    """The broker answered a SUBSCRIBE with failure (SUBACK 0x80): a broker failure, so the
    connection is dropped and made again rather than served without the subscription."""


def refused_in_suback(granted: object) -> bool:
    """True when a SUBACK (aiomqtt's `subscribe` result: paho ReasonCodes, or granted QoS integers)
    holds a failure. NATS answers 0x80 when it cannot make a subscription's JetStream consumer in
    time, or when the account's limits or permissions forbid it; Mosquitto when its ACL does."""
    if not isinstance(granted, (list, tuple)):
        return False  # a test double that answers nothing
    for code in granted:
        value = getattr(code, "value", code)
        if getattr(code, "is_failure", False) or (isinstance(value, int) and value >= 0x80):
            return True
    return False


# CONNACK codes of a refused login: MQTT 3.1.1 (4 bad user name or password, 5 not authorised) and
# MQTT 5 / paho's ReasonCode (0x86, 0x87).
_LOGIN_REFUSED = {4, 5, 0x86, 0x87}


def is_login_refused(exc: BaseException) -> bool:
    """True when the broker refused the connection for its login (not for being down or busy)."""
    if not isinstance(exc, MqttConnectError):
        return False
    code = getattr(exc.rc, "value", exc.rc)
    return isinstance(code, int) and code in _LOGIN_REFUSED


@dataclass
class Backoff:
    """Exponential backoff with full jitter, so a fleet does not reconnect in lockstep."""

    initial_s: float = 0.5
    maximum_s: float = 30.0
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum_s, self.initial_s * 2 ** min(self.attempt, 30))
        # The exponent stops growing at the cap: an outage of days must not overflow the float.
        self.attempt = min(self.attempt + 1, 31)
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


async def run_connected(
    name: str,
    session: Callable[[], Awaitable[None]],
    *,
    backoff: Backoff | None = None,
    on_disconnect: Callable[[], None] | None = None,
) -> None:
    """Run `session` (which connects and serves) again after every broker failure, forever.

    `session` is expected to reset the backoff once it is connected; cancellation ends the loop.
    """
    backoff = backoff or Backoff()
    while True:
        try:
            await session()
            return
        except BaseException as exc:
            if not is_broker_failure(exc):
                raise
            if on_disconnect is not None:
                on_disconnect()
            delay = backoff.next_delay()
            log.warning("%s: broker connection failed (%s); retrying in %.1f s", name, exc, delay)
            await asyncio.sleep(delay)


async def serve_until_stopped(stop: asyncio.Event, *work: Coroutine[Any, Any, None]) -> None:
    """Run a connected session's tasks until `stop` is set or one of them ends, then cancel the rest.

    What a task raised (a lost connection, in the one reading messages) is raised here, so that
    `run_connected` reconnects; a cancelled task is no failure.
    """
    tasks = [asyncio.create_task(each) for each in work]
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [*tasks, stopping]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
