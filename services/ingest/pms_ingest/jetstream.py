"""Ingest's JetStream source (PMS_INGEST_SOURCE=jetstream): the NATS scale path.

Gateways publish their readings over MQTT to any node of a NATS cluster; NATS maps the topic
`pms/v1/gw/X/readings` to the subject `pms.v1.gw.X.readings`, which the stream PMS_READINGS
(work-queue retention, replicated) keeps. Every ingest replica pulls from the one durable consumer
`pms-ingest` of that stream, so JetStream hands each message to one replica at a time. A replica
acks a message to JetStream only after its store write (explicit ack); what a replica fetched and
did not ack (it died, or the store failed) is delivered again after `jetstream_ack_wait_s`, to
whichever replica pulls next. Writes are idempotent, so a redelivery is never counted twice.

The gateways' own acks (the end-to-end contract: their outboxes delete only what ingest acks) and
the dead letters go out as plain NATS publishes on the MQTT subjects, which NATS delivers to the
gateways' MQTT subscriptions. A gateway offline at that moment misses its ack and resends, and the
resend is stored again idempotently and acked: nothing rests on the ack's delivery.

Weather is taken from a plain subscription of the queue group `pms-ingest` (one replica each):
the weather service publishes it again periodically and it carries no ack. The same goes for the
expected yield the weather service publishes after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import ClassVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig

from pms_common import topics
from pms_common.mqtt import Backoff
from pms_ingest import metrics
from pms_ingest.service import (
    Flushed,
    Ingest,
    Publisher,
    Received,
    Rejected,
    parse_batch,
    parse_plant_message,
    run_until_stopped,
)

log = logging.getLogger(__name__)

STREAM = "PMS_READINGS"
CONSUMER = "pms-ingest"
WEATHER_QUEUE = "pms-ingest"
# Messages a consumer may have out unacked, across every replica: beyond it JetStream hands out no
# more until acks come back.
MAX_ACK_PENDING = 20_000
# How long one pull waits for messages when the stream is empty.
FETCH_WAIT_S = 1.0


def subject_of_topic(topic: str) -> str:
    """The NATS subject NATS's MQTT listener uses for an MQTT topic: levels joined by '.', a '.'
    inside a level written '//' (servers from 2.10 accept such topics; 2.9 refuses them)."""
    return ".".join(level.replace(".", "//") for level in topic.split("/"))


def topic_of_subject(subject: str) -> str:
    """The MQTT topic of a NATS subject (the inverse of subject_of_topic)."""
    return "/".join(token.replace("//", ".") for token in subject.split("."))


READINGS_SUBJECT = subject_of_topic(topics.ALL_READINGS).replace("+", "*")
WEATHER_SUBJECT = subject_of_topic(topics.ALL_WEATHER).replace("+", "*")
EXPECTED_SUBJECT = subject_of_topic(topics.ALL_EXPECTED).replace("+", "*")


class NatsPublisher:
    """Publishes on the MQTT topics through NATS (the gateways' MQTT subscriptions receive it)."""

    def __init__(self, connection: NatsClient) -> None:
        self.connection = connection

    async def publish(self, topic: str, /, payload: bytes, qos: int = 0) -> None:
        # A NATS publish is buffered by the client (also while it reconnects): no round trip per ack.
        await self.connection.publish(subject_of_topic(topic), payload)


class JetStreamIngest(Ingest):
    publish_errors: ClassVar[tuple[type[Exception], ...]] = (nats.errors.Error, OSError)

    def stream_config(self) -> StreamConfig:
        return StreamConfig(name=STREAM, subjects=[READINGS_SUBJECT], retention=RetentionPolicy.WORK_QUEUE,
                            storage=StorageType.FILE, num_replicas=self.settings.jetstream_replicas,
                            description="gateways' readings batches, until an ingest replica has stored them")

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT,
                              deliver_policy=DeliverPolicy.ALL, ack_wait=self.settings.jetstream_ack_wait_s,
                              max_ack_pending=MAX_ACK_PENDING, max_deliver=-1)

    async def run(self, stop: asyncio.Event) -> None:
        self.health.set("nats", False)
        self.health.set("store", True)
        connection = await self._connect(stop)
        if connection is None:
            return
        publisher = NatsPublisher(connection)
        try:
            weather = await connection.subscribe(WEATHER_SUBJECT, queue=WEATHER_QUEUE,
                                                 cb=partial(self._receive_plant_message, publisher))
            expected = await connection.subscribe(EXPECTED_SUBJECT, queue=WEATHER_QUEUE,
                                                  cb=partial(self._receive_plant_message, publisher))
            try:
                await run_until_stopped([self._pull(connection, publisher), self._writer(publisher)], stop)
            finally:
                await weather.unsubscribe()
                await expected.unsubscribe()
        finally:
            self.health.set("nats", False)
            # The acks given to the client go out before it closes; what is not acked is delivered again.
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                await connection.flush(timeout=2)
            await connection.close()

    async def _connect(self, stop: asyncio.Event) -> NatsClient | None:
        """Connected to any of the servers, retrying with backoff until `stop` (then None)."""
        backoff = Backoff()
        servers = self.settings.nats_servers()
        user, password = self.settings.nats_login()
        while not stop.is_set():
            try:
                return await nats.connect(
                    servers=servers, user=user, password=password, name=self.settings.client_id(), connect_timeout=2,
                    allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                    disconnected_cb=self._disconnected, reconnected_cb=self._reconnected,
                    error_cb=self._error,
                )
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                delay = backoff.next_delay()
                log.warning("ingest: NATS %s not reachable (%s); retrying in %.1f s", ",".join(servers), exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        return None

    async def _disconnected(self) -> None:
        self.health.set("nats", False)
        log.warning("ingest: NATS connection lost; reconnecting to another server")

    async def _reconnected(self) -> None:
        log.info("ingest: NATS connection made again")

    async def _error(self, exc: Exception) -> None:
        log.warning("ingest: NATS: %s", exc)

    async def _bind(self, connection: NatsClient) -> object:
        """The stream and the shared durable consumer (made by whichever replica comes first; the
        same configuration again is no change), then a pull subscription bound to it."""
        js = connection.jetstream(timeout=10)
        try:
            await js.add_stream(self.stream_config())
        except nats.js.errors.BadRequestError as exc:
            # The stream exists with another configuration (an operator changed it): use it as it is.
            log.warning("ingest: stream %s kept as it is: %s", STREAM, exc)
        try:
            await js.add_consumer(STREAM, self.consumer_config())
        except nats.js.errors.BadRequestError as exc:
            log.warning("ingest: consumer %s kept as it is: %s", CONSUMER, exc)
        return await js.pull_subscribe_bind(durable=CONSUMER, stream=STREAM)

    async def _pull(self, connection: NatsClient, publisher: Publisher) -> None:
        subscription = None
        while True:
            if subscription is None:
                try:
                    subscription = await self._bind(connection)
                except (nats.errors.Error, OSError, TimeoutError) as exc:
                    # A cluster electing its leaders answers nothing for a moment.
                    log.warning("ingest: JetStream not ready (%s); trying again", exc)
                    await asyncio.sleep(1)
                    continue
                log.info("ingest: pulling %s from %s as %s", READINGS_SUBJECT, STREAM, CONSUMER)
            if self._pending_readings >= self.settings.max_pending_readings:
                # The writer is behind: pull nothing more until it has caught up.
                self._room.clear()
                await self._room.wait()
            try:
                messages = await subscription.fetch(  # type: ignore[attr-defined]
                    batch=self.settings.jetstream_fetch, timeout=FETCH_WAIT_S)
            except nats.errors.TimeoutError:
                self.health.set("nats", connection.is_connected)
                continue
            except (nats.errors.Error, OSError) as exc:
                self.health.set("nats", False)
                log.warning("ingest: pulling from %s failed (%r); trying again", STREAM, exc)
                await asyncio.sleep(0.5)
                continue
            self.health.set("nats", True)
            for message in messages:
                await self._receive_message(publisher, message)

    async def _receive_message(self, publisher: Publisher, message: Msg) -> None:
        topic = topic_of_subject(message.subject)
        with contextlib.suppress(nats.errors.Error):  # a message without JetStream metadata
            if message.metadata.num_delivered > 1:
                metrics.REDELIVERED.inc()
        try:
            self._enqueue(Received(parse_batch(topic, message.data), topic, message.data, handle=message))
        except Rejected as exc:
            await self._deadletter(publisher, topic, message.data, exc)
            await self._settle(message, "term")  # never stored: delivering it again would change nothing

    async def _receive_plant_message(self, publisher: Publisher, message: Msg) -> None:
        topic = topic_of_subject(message.subject)
        try:
            self._plant_messages.append(parse_plant_message(topic, message.data))
        except Rejected as exc:
            await self._deadletter(publisher, topic, message.data, exc)
        else:
            self._work.set()

    async def _after_write(self, client: Publisher, result: Flushed) -> None:
        await super()._after_write(client, result)
        # Only now, the write durable, does JetStream hear that these are done.
        for item, _ in result.stored:
            await self._settle(item.handle, "ack")
        for item, _ in result.refused:
            # Dead-lettered by the writer; the gateway, not acked, resends it.
            await self._settle(item.handle, "term")
        for item in result.failed:
            await self._settle(item.handle, "nak")

    async def _settle(self, handle: object, how: str) -> None:
        if not isinstance(handle, Msg):
            return
        try:
            if how == "ack":
                await handle.ack()
            elif how == "term":
                await handle.term()
            else:
                await handle.nak(delay=self.settings.store_retry_s)
        except (nats.errors.Error, OSError) as exc:
            # Delivered again after ack_wait; the write is idempotent.
            log.warning("ingest: a JetStream %s was not sent (%s)", how, exc)

