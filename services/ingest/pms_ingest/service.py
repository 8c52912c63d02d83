"""The ingest service: MQTT in, store writes, acks and dead letters out."""

from __future__ import annotations

import asyncio
import base64
import logging
import time

import aiomqtt
from pydantic import ValidationError

from pms_common import timeutil, topics
from pms_common.health import Health
from pms_common.messages import Ack, DeadLetter, EnergyReading, PowerReading, ReadingsBatch, Weather
from pms_common.mqtt import Backoff, BrokerAddress, run_connected
from pms_ingest import metrics
from pms_ingest.progress import StreamProgress
from pms_ingest.settings import IngestSettings
from pms_store import StoreError, TimeSeriesStore

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A payload that will never be stored; `kind` is the low-cardinality metric label."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_batch(topic: str, payload: bytes) -> ReadingsBatch:
    try:
        batch = ReadingsBatch.model_validate_json(payload)
    except ValidationError as exc:
        kind = "json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "schema"
        raise Rejected(kind, _validation_reason(exc)) from exc
    parts = topics.split_gateway_topic(topic)
    if parts is None or parts[0] != batch.gateway_id:
        raise Rejected("topic", f"gateway_id {batch.gateway_id!r} does not match the topic {topic!r}")
    return batch


class Ingest:
    def __init__(self, settings: IngestSettings, store: TimeSeriesStore, health: Health) -> None:
        self.settings = settings
        self.store = store
        self.health = health
        self.broker = BrokerAddress.parse(settings.mqtt_url)
        self.progress: dict[tuple[str, str], StreamProgress] = {}

    def _subscription(self, topic: str) -> str:
        return f"$share/{self.settings.share_group}/{topic}" if self.settings.share_group else topic

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()

        async def session() -> None:
            client_id = self.settings.mqtt_client_id or "pms-ingest"
            async with self.broker.client(identifier=client_id,
                                          clean_session=not self.settings.persistent_session) as client:
                backoff.reset()
                await client.subscribe(self._subscription(topics.ALL_READINGS), qos=1)
                await client.subscribe(self._subscription(topics.ALL_WEATHER), qos=1)
                self.health.set("mqtt", True)
                log.info("ingest: connected to %s:%d, storing readings", self.broker.host, self.broker.port)
                consumer = asyncio.create_task(self._consume(client))
                stopper = asyncio.create_task(stop.wait())
                try:
                    done, _ = await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if consumer in done:
                        consumer.result()
                finally:
                    for task in (consumer, stopper):
                        task.cancel()
                    self.health.set("mqtt", False)

        self.health.set("mqtt", False)
        await run_connected("ingest", session, backoff=backoff)

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                if topic.endswith("/weather"):
                    await self._store_weather(topic, payload)
                else:
                    await self._store_batch(client, topic, payload)
            except Rejected as exc:
                await self._deadletter(client, topic, payload, exc)
            except StoreError as exc:
                # Not acked: the gateway resends once the store is back.
                metrics.STORE_ERRORS.inc()
                self.health.set("store", False)
                log.error("ingest: store write failed, batch will be resent: %s", exc)

    async def _store_batch(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        batch = parse_batch(topic, payload)
        power = [r for r in batch.readings if isinstance(r, PowerReading)]
        energy = [r for r in batch.readings if isinstance(r, EnergyReading)]
        started = time.perf_counter()
        outcome = await asyncio.to_thread(self.store.write_readings, batch.gateway_id, power, energy)
        metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
        self.health.set("store", True)
        metrics.BATCHES.inc()
        metrics.READINGS.labels("power").inc(len(power))
        metrics.READINGS.labels("energy").inc(len(energy))
        for anomaly in outcome.register_anomalies:
            metrics.ANOMALIES.inc()
            log.warning("ingest: %s: %s", batch.gateway_id, anomaly)
        progress = self.progress.setdefault((batch.gateway_id, batch.stream_id), StreamProgress())
        acked = progress.stored(batch.seq, batch.outbox_floor_seq)
        ack = Ack(gateway_id=batch.gateway_id, stream_id=batch.stream_id, acked_seq=acked, at=timeutil.now_jst())
        await client.publish(topics.ack(batch.gateway_id), ack.to_json(), qos=1)

    async def _store_weather(self, topic: str, payload: bytes) -> None:
        try:
            weather = Weather.model_validate_json(payload)
        except ValidationError as exc:
            raise Rejected("schema", _validation_reason(exc)) from exc
        if topics.service_code_of_weather_topic(topic) != weather.service_code:
            raise Rejected("topic", f"service_code {weather.service_code!r} does not match the topic {topic!r}")
        await asyncio.to_thread(self.store.write_weather, [weather])
        metrics.WEATHER.inc()

    async def _deadletter(self, client: aiomqtt.Client, topic: str, payload: bytes, exc: Rejected) -> None:
        metrics.DEADLETTERS.labels(exc.kind).inc()
        log.warning("ingest: rejected a payload on %s: %s", topic, exc.reason)
        try:
            text, encoding = payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(payload).decode(), "base64"
        letter = DeadLetter(service="ingest", topic=topic, reason=exc.reason, payload=text,
                            payload_encoding=encoding, received_at=timeutil.now_jst())  # type: ignore[arg-type]
        await client.publish(topics.deadletter("ingest"), letter.to_json(), qos=1)
