"""The collector agent: a read loop that fills the outbox, and an MQTT loop that empties it on acks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime

import aiomqtt
from pydantic import TypeAdapter, ValidationError

from pms_collector import metrics
from pms_collector.meter import MeterLink, MeterReader, MeterReadError
from pms_collector.outbox import Outbox
from pms_collector.settings import CollectorSettings
from pms_common import timeutil, topics
from pms_common.health import Health
from pms_common.messages import Ack, EnergyReading, GatewayStatus, Heartbeat, PowerReading, Reading
from pms_common.mqtt import Backoff, BrokerAddress, run_connected

log = logging.getLogger(__name__)
_READINGS = TypeAdapter(list[Reading])
# The meter updates EA/EB a moment after the slot boundary; asking at once would return the old slot.
_SLOT_READ_DELAY_S = 5.0


class Collector:
    def __init__(
        self,
        settings: CollectorSettings,
        link: MeterLink,
        health: Health,
        *,
        clock: Callable[[], datetime] = timeutil.now_jst,
    ) -> None:
        self.settings = settings
        self.gateway_id = settings.gateway_id
        self.link = link
        self.reader = MeterReader(link, timeout_s=settings.read_timeout_s)
        self.health = health
        self.clock = clock
        self.broker = BrokerAddress.parse(settings.mqtt_url)
        self.outbox = Outbox(settings.resolved_outbox_path(), max_batches=settings.outbox_max_batches)
        self.started = time.monotonic()
        self.read_errors = 0
        self.last_slot_end: datetime | None = None
        self._new_batch = asyncio.Event()
        self._in_flight: dict[int, float] = {}
        self._thinned_seen = 0

    # ---- reading the meter -------------------------------------------------------------------
    def _store(self, readings: list[PowerReading | EnergyReading]) -> None:
        body = _READINGS.dump_json(readings).decode()
        has_energy = any(isinstance(r, EnergyReading) for r in readings)
        self.outbox.append(body, has_energy=has_energy, now=time.time())
        thinned = self.outbox.thinned_power_batches - self._thinned_seen
        if thinned:
            metrics.THINNED.inc(thinned)
            self._thinned_seen = self.outbox.thinned_power_batches
        for reading in readings:
            metrics.READINGS.labels(reading.kind).inc()
        metrics.OUTBOX_DEPTH.labels(self.gateway_id).set(self.outbox.depth())
        self._new_batch.set()

    async def _read_energy(self) -> None:
        reading = await self.reader.read_fixed_time_energy()
        if reading is not None and (self.last_slot_end is None or reading.slot_end > self.last_slot_end):
            self._store([reading])
            self.last_slot_end = reading.slot_end

    async def read_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff(initial_s=1.0, maximum_s=60.0)
        interval = self.settings.power_interval_s
        next_power = time.monotonic()
        next_slot_check = 0.0
        while not stop.is_set():
            try:
                if self.reader.scale is None:
                    await self.reader.read_scale()
                now_mono = time.monotonic()
                if now_mono >= next_slot_check:
                    await self._read_energy()
                    now = self.clock()
                    boundary = timeutil.slot_end_at_or_before(now) + timeutil.SLOT
                    next_slot_check = now_mono + (boundary - now).total_seconds() + _SLOT_READ_DELAY_S
                if now_mono >= next_power:
                    power = await self.reader.read_power(self.clock())
                    if power is not None:
                        self._store([power])
                    next_power += interval
                    if next_power < now_mono:  # fell behind (slow link): skip, do not burst
                        next_power = now_mono + interval
                backoff.reset()
                wait = max(0.0, min(next_power, next_slot_check) - time.monotonic())
            except (MeterReadError, TimeoutError) as exc:
                self.read_errors += 1
                metrics.READ_ERRORS.inc()
                wait = backoff.next_delay()
                log.warning("%s: meter read failed (%s); next try in %.1f s", self.gateway_id, exc, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)

    # ---- talking to the broker ---------------------------------------------------------------
    def _status(self, state: str, reason: str | None, at: datetime | None) -> bytes:
        return GatewayStatus(gateway_id=self.gateway_id, state=state, reason=reason, at=at).to_json()  # type: ignore[arg-type]

    async def mqtt_loop(self, stop: asyncio.Event) -> None:
        backoff = Backoff()

        async def session() -> None:
            will = aiomqtt.Will(topics.status(self.gateway_id), self._status("offline", "connection lost", None),
                                qos=1, retain=True)
            client_id = self.settings.mqtt_client_id or f"pms-gw-{self.gateway_id}"
            async with self.broker.client(identifier=client_id, will=will, clean_session=True) as client:
                backoff.reset()
                self._in_flight.clear()  # nothing sent on the old connection is known to have arrived
                self.health.set(f"mqtt:{self.gateway_id}", True)
                metrics.CONNECTED.labels(self.gateway_id).set(1)
                await client.subscribe(topics.ack(self.gateway_id), qos=1)
                await client.publish(topics.status(self.gateway_id), self._status("online", None, self.clock()),
                                     qos=1, retain=True)
                log.info("%s: connected to %s:%d", self.gateway_id, self.broker.host, self.broker.port)
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._consume(client))
                        group.create_task(self._pump(client, stop))
                        group.create_task(self._heartbeat(client, stop))
                        await stop.wait()
                        raise _Stopping
                except* _Stopping:
                    await client.publish(topics.status(self.gateway_id),
                                         self._status("offline", "shutdown", self.clock()), qos=1, retain=True)
                finally:
                    self.health.set(f"mqtt:{self.gateway_id}", False)
                    metrics.CONNECTED.labels(self.gateway_id).set(0)

        def disconnected() -> None:
            self.health.set(f"mqtt:{self.gateway_id}", False)

        await run_connected(f"collector {self.gateway_id}", session, backoff=backoff, on_disconnect=disconnected)

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                ack = Ack.model_validate_json(message.payload)  # type: ignore[arg-type]
            except ValidationError as exc:
                log.warning("%s: ignoring a bad ack: %s", self.gateway_id, exc.errors()[0]["msg"])
                continue
            if ack.stream_id != self.outbox.stream_id or ack.gateway_id != self.gateway_id:
                continue
            deleted = self.outbox.ack(ack.acked_seq)
            metrics.BATCHES_ACKED.inc(deleted)
            for seq in [s for s in self._in_flight if s <= ack.acked_seq]:
                del self._in_flight[seq]
            metrics.OUTBOX_DEPTH.labels(self.gateway_id).set(self.outbox.depth())
            self._new_batch.set()

    async def _pump(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Publish outbox batches in order, at most max_in_flight unacked, resending after a timeout."""
        while not stop.is_set():
            self._new_batch.clear()
            now = time.monotonic()
            timeout = self.settings.resend_timeout_s
            expired = [seq for seq, sent in self._in_flight.items() if now - sent > timeout]
            for seq in expired:
                del self._in_flight[seq]
            room = self.settings.max_in_flight - len(self._in_flight)
            if room > 0:
                floor = self.outbox.floor_seq()
                candidates = self.outbox.pending(limit=room + len(self._in_flight))
                for batch in candidates:
                    if batch.seq in self._in_flight:
                        continue
                    if room <= 0:
                        break
                    payload = (
                        f'{{"v":1,"gateway_id":{json.dumps(self.gateway_id)},'
                        f'"stream_id":"{self.outbox.stream_id}","seq":{batch.seq},'
                        f'"outbox_floor_seq":{floor},"sent_at":"{self.clock().isoformat()}",'
                        f'"readings":{batch.readings_json}}}'
                    )
                    await client.publish(topics.readings(self.gateway_id), payload.encode(), qos=1)
                    (metrics.BATCHES_RESENT if batch.seq in expired else metrics.BATCHES_PUBLISHED).inc()
                    self._in_flight[batch.seq] = time.monotonic()
                    room -= 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_batch.wait(), timeout=1.0)

    async def _heartbeat(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        while not stop.is_set():
            beat = Heartbeat(
                gateway_id=self.gateway_id,
                at=self.clock(),
                uptime_s=round(time.monotonic() - self.started, 1),
                firmware=self.settings.firmware,
                module_family=self.link.family,  # type: ignore[arg-type]
                read_errors_total=self.read_errors,
                outbox_depth=self.outbox.depth(),
                last_slot_end=self.last_slot_end,
                power_interval_s=self.settings.power_interval_s,
                heartbeat_interval_s=self.settings.heartbeat_interval_s,
            )
            await client.publish(topics.heartbeat(self.gateway_id), beat.to_json(), qos=0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.heartbeat_interval_s)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.read_loop(stop))
                group.create_task(self.mqtt_loop(stop))
        finally:
            self.outbox.close()


class _Stopping(Exception):
    """Raised inside the session's task group to end it when the service is asked to stop."""
