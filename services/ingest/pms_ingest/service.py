"""The ingest service: MQTT in, store writes, acks and dead letters out.

Two tasks share one connection. The consumer validates each payload as it arrives (a bad one is
dead-lettered at once) and queues it; the writer takes everything queued, up to
`flush_max_readings`, and stores it in one durable step (one SQLite transaction, one InfluxDB
write), then publishes one cumulative ack per gateway stream. Batches grow by themselves under load,
since they queue while the previous write runs, and stay single when the stream is slow.

Nothing is acked before its write is durable, so a crash (SIGKILL included) loses only unacked
batches, which the gateways resend; writes are idempotent, so a resend is never counted twice.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Protocol, TypeVar

import aiomqtt
from pydantic import BaseModel, ValidationError

from pms_common import timeutil, topics
from pms_common.contract_reader import ContractReader
from pms_common.health import Health
from pms_common.messages import Ack, DeadLetter, ExpectedYield, ReadingsBatch, Weather
from pms_common.mqtt import Backoff, BrokerAddress, run_connected
from pms_ingest import metrics
from pms_ingest.progress import StreamProgress, seq_ranges
from pms_ingest.settings import IngestSettings
from pms_store import GatewayReadings, StoreError, StoreRefused, TimeSeriesStore, WriteOutcome

log = logging.getLogger(__name__)

# Messages taken from aiomqtt's queue in one go before the pending limit is checked again.
_DRAIN_MAX = 200
# After one large write the ingest publishes an ack per batch, to as many gateways as the write
# held; paho's default window of 20 unacknowledged publishes would hold the rest back in its queue
# while gateways wait for their ack and resend.
ACKS_IN_FLIGHT = 1000
# Unknown fields (a newer writer's) are dropped and counted, never a cause to reject a payload.
READER = ContractReader("ingest", metrics.UNKNOWN_FIELDS)


async def run_until_stopped(work: list[Coroutine[Any, Any, None]], stop: asyncio.Event) -> None:
    """Runs the session's tasks until `stop` or until one of them ends (its error raised here); then
    cancels the others and waits for them, so that a session never leaves a task behind."""
    tasks = {asyncio.create_task(coro) for coro in work}
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in done & tasks:
            task.result()
    finally:
        for task in (*tasks, stopper):
            task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)


class Publisher(Protocol):
    """Where acks and dead letters go: aiomqtt's client, or pms_ingest.jetstream's NATS publisher."""

    async def publish(self, topic: str, /, payload: bytes, qos: int = 0) -> object: ...


class Rejected(Exception):
    """A payload that will never be stored; `kind` is the low-cardinality metric label."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


_Message = TypeVar("_Message", bound=BaseModel)


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _parsed(model: type[_Message], payload: bytes) -> _Message:
    """The payload read as `model` (unknown fields dropped and counted), or Rejected: json or schema."""
    try:
        return READER.parse(model, payload)
    except ValidationError as exc:
        kind = "json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "schema"
        raise Rejected(kind, _validation_reason(exc)) from exc


def parse_batch(topic: str, payload: bytes) -> ReadingsBatch:
    batch = _parsed(ReadingsBatch, payload)
    parts = topics.split_gateway_topic(topic)
    if parts is None or parts[0] != batch.gateway_id:
        raise Rejected("topic", f"gateway_id {batch.gateway_id!r} does not match the topic {topic!r}")
    return batch


def parse_weather(topic: str, payload: bytes) -> Weather:
    weather = _parsed(Weather, payload)
    if topics.service_code_of_weather_topic(topic) != weather.service_code:
        raise Rejected("topic", f"service_code {weather.service_code!r} does not match the topic {topic!r}")
    return weather


def parse_expected(topic: str, payload: bytes) -> ExpectedYield:
    expected = _parsed(ExpectedYield, payload)
    if topics.service_code_of_expected_topic(topic) != expected.service_code:
        raise Rejected("topic", f"service_code {expected.service_code!r} does not match the topic {topic!r}")
    return expected


# What the plants' topics carry: stored without an ack (their publisher sends them again).
PlantMessage = Weather | ExpectedYield


def parse_plant_message(topic: str, payload: bytes) -> PlantMessage:
    """A weather or expected-yield message, by its topic's last level."""
    return parse_expected(topic, payload) if topic.endswith("/expected") else parse_weather(topic, payload)


@dataclass
class Received:
    """A validated readings batch waiting for the writer."""

    batch: ReadingsBatch
    topic: str
    payload: bytes
    received_at: float = field(default_factory=time.monotonic)
    # The source's handle to settle it once written (a JetStream message); None over MQTT, where the
    # client has acked the delivery already and the gateway's ack is the only one that counts.
    handle: object | None = None

    @property
    def count(self) -> int:
        return len(self.batch.readings)

    @cached_property
    def readings(self) -> GatewayReadings:
        # Computed by the writer thread, off the event loop that receives the messages.
        power = [r for r in self.batch.readings if r.kind == "power"]
        energy = [r for r in self.batch.readings if r.kind == "energy"]
        return GatewayReadings(self.batch.gateway_id, power, energy)  # type: ignore[arg-type]


@dataclass
class Flushed:
    """What one write did: batches stored (with their outcomes), refused for good, or not written."""

    stored: list[tuple[Received, WriteOutcome]] = field(default_factory=list)
    refused: list[tuple[Received, StoreRefused]] = field(default_factory=list)
    failed: list[Received] = field(default_factory=list)
    error: StoreError | None = None
    weather_stored: int = 0


def write_isolating(store: TimeSeriesStore, items: list[Received]) -> Flushed:
    """Write `items` in one step; if the store refuses that step, halve it until the batches it
    refuses are alone, so one bad batch never keeps the others out. A store that cannot be reached
    fails the rest at once: halving would only multiply the timeouts."""
    result = Flushed()

    def write(group: list[Received]) -> None:
        if result.error is not None:
            result.failed.extend(group)
            return
        try:
            outcomes = store.write_many([item.readings for item in group])
        except StoreRefused as exc:
            if len(group) == 1:
                result.refused.append((group[0], exc))
                return
            middle = len(group) // 2
            write(group[:middle])
            write(group[middle:])
        except StoreError as exc:
            result.error = exc
            result.failed.extend(group)
        else:
            result.stored.extend(zip(group, outcomes, strict=True))

    if items:
        write(items)
    return result


class Ingest:
    # What a failed ack publish raises: logged, and the gateway resends.
    publish_errors: ClassVar[tuple[type[Exception], ...]] = (aiomqtt.MqttError,)

    def __init__(self, settings: IngestSettings, store: TimeSeriesStore, health: Health) -> None:
        self.settings = settings
        self.store = store
        self.health = health
        self.broker = BrokerAddress.parse(settings.mqtt_url)
        self.progress: dict[tuple[str, str], StreamProgress] = {}
        # Received, not yet written: batches and plant messages (weather, expected yield), in arrival
        # order, kept across reconnects.
        self._batches: deque[Received] = deque()
        self._plant_messages: list[PlantMessage] = []
        self._pending_readings = 0
        self._work = asyncio.Event()
        self._room = asyncio.Event()
        self._ack_tasks: set[asyncio.Task[None]] = set()

    def _subscription(self, topic: str) -> str:
        return f"$share/{self.settings.share_group}/{topic}" if self.settings.share_group else topic

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()

        async def session() -> None:
            inbound: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()
            async with self.broker.client(identifier=self.settings.client_id(),
                                          clean_session=not self.settings.persistent_session,
                                          inbound_queue=inbound,
                                          max_inflight=ACKS_IN_FLIGHT) as client:
                backoff.reset()
                # Acks are published without waiting on each other: hundreds may await their PUBACK
                # after a large write, which is no cause for aiomqtt's warning per publish.
                client.pending_calls_threshold = 1_000_000
                await client.subscribe(self._subscription(topics.ALL_READINGS), qos=1)
                await client.subscribe(self._subscription(topics.ALL_WEATHER), qos=1)
                await client.subscribe(self._subscription(topics.ALL_EXPECTED), qos=1)
                self.health.set("mqtt", True)
                log.info("ingest: connected to %s:%d, storing readings into %s", self.broker.host,
                         self.broker.port, type(self.store).__name__)
                try:
                    await run_until_stopped([self._consume(client, inbound), self._writer(client)], stop)
                finally:
                    self.health.set("mqtt", False)

        self.health.set("mqtt", False)
        self.health.set("store", True)
        await run_connected("ingest", session, backoff=backoff)

    # --- receiving -------------------------------------------------------------------------------

    async def _consume(self, client: aiomqtt.Client, inbound: asyncio.Queue[aiomqtt.Message]) -> None:
        # What is queued when a message arrives is taken with it, up to _DRAIN_MAX, before the
        # dead letters are published and the pending limit is checked: per burst, not per message,
        # which matters at thousands of messages per second. `inbound` is the queue aiomqtt fills
        # (handed to it when the client was made): get_nowait() takes a queued message without the
        # event-loop turn per message that the message iterator costs.
        async for message in client.messages:
            rejected = [self._receive(message)]
            while len(rejected) < _DRAIN_MAX:
                try:
                    queued = inbound.get_nowait()
                except asyncio.QueueEmpty:
                    break
                rejected.append(self._receive(queued))
            for letter in rejected:
                if letter is not None:
                    await self._deadletter(client, *letter)
            if self._pending_readings >= self.settings.max_pending_readings:
                # The writer is behind: stop taking messages until it has caught up.
                self._room.clear()
                await self._room.wait()

    def _receive(self, message: aiomqtt.Message) -> tuple[str, bytes, Rejected] | None:
        """Validate and queue one message; a rejected one comes back for the dead letters."""
        topic = message.topic.value
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        try:
            if topic.endswith(("/weather", "/expected")):
                self._plant_messages.append(parse_plant_message(topic, payload))
                self._work.set()
            else:
                self._enqueue(Received(parse_batch(topic, payload), topic, payload))
        except Rejected as exc:
            return topic, payload, exc
        return None

    def _enqueue(self, item: Received) -> None:
        self._batches.append(item)
        self._pending_readings += item.count
        metrics.PENDING_READINGS.set(self._pending_readings)
        self._work.set()

    def _take(self) -> tuple[list[Received], list[PlantMessage]]:
        """Everything queued, up to flush_max_readings (at least one batch, however large)."""
        items: list[Received] = []
        readings = 0
        limit = self.settings.flush_max_readings
        while self._batches and (not items or readings + self._batches[0].count <= limit):
            item = self._batches.popleft()
            items.append(item)
            readings += item.count
        plant_messages, self._plant_messages = self._plant_messages, []
        self._pending_readings -= readings
        metrics.PENDING_READINGS.set(self._pending_readings)
        if self._pending_readings < self.settings.max_pending_readings:
            self._room.set()
        if not self._batches:
            self._work.clear()
        return items, plant_messages

    # --- writing ---------------------------------------------------------------------------------

    async def _writer(self, client: Publisher) -> None:
        while True:
            await self._work.wait()
            if self.settings.flush_linger_s:
                await asyncio.sleep(self.settings.flush_linger_s)
            items, plant_messages = self._take()
            if plant_messages:
                await self._store_plant_messages(plant_messages)
            if not items:
                continue
            started = time.perf_counter()
            result = await asyncio.to_thread(write_isolating, self.store, items)
            metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
            metrics.FLUSH_BATCHES.observe(len(items))
            metrics.FLUSH_READINGS.observe(sum(item.count for item in items))
            await self._after_write(client, result)
            if result.error is not None:
                # Not acked: the gateways resend. Pause, so a store that is down is not hammered.
                await asyncio.sleep(self.settings.store_retry_s)

    async def _after_write(self, client: Publisher, result: Flushed) -> None:
        now = time.monotonic()
        acks: dict[tuple[str, str], int] = {}
        stored_now: dict[tuple[str, str], list[int]] = {}
        power = energy = 0
        for item, outcome in result.stored:
            batch = item.batch
            metrics.LAG_SECONDS.observe(now - item.received_at)
            power += len(item.readings.power)
            energy += len(item.readings.energy)
            for anomaly in outcome.register_anomalies:
                metrics.ANOMALIES.inc()
                log.warning("ingest: %s: %s", batch.gateway_id, anomaly)
            key = (batch.gateway_id, batch.stream_id)
            acks[key] = self.progress.setdefault(key, StreamProgress()).stored(batch.seq, batch.outbox_floor_seq)
            stored_now.setdefault(key, []).append(batch.seq)
        if result.stored:
            metrics.BATCHES.inc(len(result.stored))
            metrics.READINGS.labels("power").inc(power)
            metrics.READINGS.labels("energy").inc(energy)
            self.health.set("store", True)
        if result.failed:
            metrics.STORE_ERRORS.inc()
            self.health.set("store", False)
            log.error("ingest: store write failed, %d batches will be resent: %s", len(result.failed), result.error)
        for item, exc in result.refused:
            # Not acked either (the contract: a store failure is resent), but one bad batch is set
            # apart so the rest are stored, and its payload goes to the dead letters for a look.
            metrics.STORE_ERRORS.inc()
            await self._deadletter(client, item.topic, item.payload, Rejected("store", f"the store refused it: {exc}"))
        if acks:
            # One ack per stream: the cumulative point, and the batches this write stored beyond it
            # (selective), so a gap left by a batch another replica holds, or one still on its way,
            # does not keep the gateway resending what is stored. The writer does not wait for the
            # broker's PUBACKs (a round trip per flush): it goes on with the next write meanwhile. A
            # lost ack costs a resend, which idempotent writes absorb.
            at = timeutil.now_jst()
            selective = self.settings.selective_acks
            task = asyncio.create_task(self._publish_acks(client, [
                (topics.ack(gw), Ack(gateway_id=gw, stream_id=stream, acked_seq=acked, at=at, stored_ranges=seq_ranges(
                    s for s in stored_now[gw, stream] if s > acked) if selective else []).to_json())
                for (gw, stream), acked in acks.items()
            ]))
            self._ack_tasks.add(task)
            task.add_done_callback(self._ack_tasks.discard)

    async def _publish_acks(self, client: Publisher, acks: list[tuple[str, bytes]]) -> None:
        # Each ack's outcome on its own: after a storm thousands go out at once, and beyond paho's
        # window of unconfirmed publishes some wait out aiomqtt's timeout on a starved CPU. One such
        # timeout must not be reported as all N lost, nor leave the others' outcomes unobserved.
        # Waiting for the PUBACKs is not what delivers the acks (paho sends a timed-out one anyway,
        # once its window has room); it is kept only to count and log the ones not confirmed. A lost
        # ack costs the gateway a resend on its own timer, which idempotent writes absorb: no data.
        outcomes = await asyncio.gather(*(client.publish(topic, payload, qos=1) for topic, payload in acks),
                                        return_exceptions=True)
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if not failures:
            return
        metrics.ACKS_NOT_CONFIRMED.inc(len(failures))
        log.warning("ingest: %d of %d acks not confirmed by the broker (first: %s); a gateway whose ack is "
                    "lost resends", len(failures), len(acks), failures[0])
        unexpected = [failure for failure in failures if not isinstance(failure, self.publish_errors)]
        if unexpected:
            raise unexpected[0]  # a bug, not a broker failure: not to be hidden in a count

    async def _store_plant_messages(self, messages: list[PlantMessage]) -> None:
        weather = [m for m in messages if isinstance(m, Weather)]
        expected = [m for m in messages if isinstance(m, ExpectedYield)]
        if weather:
            await self._store_weather(weather)
        if expected:
            await self._store_expected(expected)

    async def _store_weather(self, weather: list[Weather]) -> None:
        try:
            await asyncio.to_thread(self.store.write_weather, weather)
        except StoreError as exc:
            # Weather has no ack: the weather service publishes it again (retained, periodically).
            metrics.STORE_ERRORS.inc()
            log.error("ingest: storing %d weather observations failed: %s", len(weather), exc)
        else:
            metrics.WEATHER.inc(len(weather))

    async def _store_expected(self, expected: list[ExpectedYield]) -> None:
        try:
            await asyncio.to_thread(self.store.write_expected, expected)
        except StoreError as exc:
            # No ack either: the slots go out again with their next weather (retained per plant).
            metrics.STORE_ERRORS.inc()
            log.error("ingest: storing %d expected-yield messages failed: %s", len(expected), exc)
        else:
            metrics.EXPECTED_SLOTS.inc(sum(len(e.slots) for e in expected))

    async def _deadletter(self, client: Publisher, topic: str, payload: bytes, exc: Rejected) -> None:
        metrics.DEADLETTERS.labels(exc.kind).inc()
        log.warning("ingest: rejected a payload on %s: %s", topic, exc.reason)
        try:
            text, encoding = payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(payload).decode(), "base64"
        letter = DeadLetter(service="ingest", topic=topic, reason=exc.reason, payload=text,
                            payload_encoding=encoding, received_at=timeutil.now_jst())  # type: ignore[arg-type]
        await client.publish(topics.deadletter("ingest"), letter.to_json(), qos=1)
