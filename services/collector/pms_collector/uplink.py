"""The collector's MQTT side: presence, the in-order pump with cumulative acks, heartbeats, and
the control channel (config/desired, cmd/req), all on the one connection the gateway dials out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING

import aiomqtt
from pydantic import ValidationError

from pms_collector import metrics
from pms_collector.control import Control
from pms_common import timeutil, topics
from pms_common.messages import Ack, CommandRequest, ConfigDesired, GatewayStatus, Heartbeat
from pms_common.mqtt import Backoff, BrokerAddress, run_connected

if TYPE_CHECKING:
    from pms_collector.agent import Collector

log = logging.getLogger(__name__)


class _Stopping(Exception):
    """Raised inside the session's task group to end it when the service is asked to stop."""


class Uplink:
    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.settings = collector.settings
        self.gateway_id = collector.gateway_id
        self.outbox = collector.outbox
        self.broker = BrokerAddress.parse(self.settings.mqtt_url)
        self.control = Control(collector)
        self._in_flight: dict[int, float] = {}

    def _status(self, state: str, reason: str | None) -> bytes:
        at = None if state == "offline" and reason == "connection lost" else timeutil.now_jst()
        return GatewayStatus(gateway_id=self.gateway_id, state=state, reason=reason, at=at).to_json()  # type: ignore[arg-type]

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(initial_s=1.0, maximum_s=120.0)
        health_key = f"mqtt:{self.gateway_id}"

        async def session() -> None:
            will = aiomqtt.Will(topics.status(self.gateway_id), self._status("offline", "connection lost"),
                                qos=1, retain=True)
            client_id = self.settings.mqtt_client_id or f"pms-gw-{self.gateway_id}"
            async with self.broker.client(identifier=client_id, will=will, clean_session=True) as client:
                backoff.reset()
                # A backlog goes out max_in_flight batches at a time by design (plus a heartbeat or a
                # command result): that many publishes awaiting PUBACK are no cause for aiomqtt's warning.
                client.pending_calls_threshold = self.settings.max_in_flight + 10
                self._in_flight.clear()  # nothing sent on the old connection is known to have arrived
                self.collector.health.set(health_key, True)
                metrics.CONNECTED.labels(self.gateway_id).set(1)
                for leaf in ("ack", "config/desired", "cmd/req"):
                    await client.subscribe(topics.gateway(self.gateway_id, leaf), qos=1)
                await client.publish(topics.status(self.gateway_id), self._status("online", None), qos=1, retain=True)
                await self.control.report_config(client)
                log.info("%s: connected to %s:%d", self.gateway_id, self.broker.host, self.broker.port)
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._consume(client, group))
                        group.create_task(self._pump(client, stop))
                        group.create_task(self._heartbeat(client, stop))
                        await stop.wait()
                        raise _Stopping
                except* _Stopping:
                    await client.publish(topics.status(self.gateway_id), self._status("offline", "shutdown"),
                                         qos=1, retain=True)
                finally:
                    self.collector.health.set(health_key, False)
                    metrics.CONNECTED.labels(self.gateway_id).set(0)

        def disconnected() -> None:
            self.collector.health.set(health_key, False)
            metrics.CONNECTED.labels(self.gateway_id).set(0)

        connected = asyncio.create_task(
            run_connected(f"collector {self.gateway_id}", session, backoff=backoff, on_disconnect=disconnected))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({connected, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not connected.done():
            # A connected session ends by itself (it publishes "offline, shutdown" first); one waiting
            # out a reconnect backoff of up to two minutes is cancelled instead.
            done, _ = await asyncio.wait({connected}, timeout=5)
            if not done:
                connected.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connected
                return
        connected.result()

    async def _consume(self, client: aiomqtt.Client, group: asyncio.TaskGroup) -> None:
        async for message in client.messages:
            leaf = topics.split_gateway_topic(str(message.topic))
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                if leaf == (self.gateway_id, "ack"):
                    self._on_ack(Ack.model_validate_json(payload))
                elif leaf == (self.gateway_id, "config/desired"):
                    await self.control.apply_config(client, ConfigDesired.model_validate_json(payload))
                elif leaf == (self.gateway_id, "cmd/req"):
                    request = CommandRequest.model_validate_json(payload)
                    # Commands may take a while (a backfill): the acks must keep flowing meanwhile.
                    group.create_task(self.control.execute(client, request))
            except ValidationError as exc:
                log.warning("%s: ignoring a bad message on %s: %s", self.gateway_id, message.topic,
                            exc.errors()[0]["msg"])

    def _on_ack(self, ack: Ack) -> None:
        if ack.stream_id != self.outbox.stream_id or ack.gateway_id != self.gateway_id:
            return
        deleted = self.outbox.ack(ack.acked_seq)
        metrics.BATCHES_ACKED.inc(deleted)
        for seq in [s for s in self._in_flight if s <= ack.acked_seq]:
            del self._in_flight[seq]
        metrics.OUTBOX_DEPTH.labels(self.gateway_id).set(self.outbox.depth())
        self.collector.new_batch.set()

    async def _pump(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Publish outbox batches in order, at most max_in_flight unacked, resending after a timeout."""
        while not stop.is_set():
            self.collector.new_batch.clear()
            now = time.monotonic()
            timeout = self.settings.resend_timeout_s
            expired = {seq for seq, sent in self._in_flight.items() if now - sent > timeout}
            if expired:
                # Resend from the oldest unacked on: ingest acks cumulatively, so order matters.
                self._in_flight.clear()
            room = self.settings.max_in_flight - len(self._in_flight)
            if room > 0:
                floor = self.outbox.floor_seq()
                after = max(self._in_flight, default=0)
                publishes = []
                for batch in self.outbox.pending(limit=room, after_seq=after):
                    payload = (
                        f'{{"v":1,"gateway_id":{json.dumps(self.gateway_id)},'
                        f'"stream_id":"{self.outbox.stream_id}","seq":{batch.seq},'
                        f'"outbox_floor_seq":{floor},"sent_at":"{timeutil.now_jst().isoformat()}",'
                        f'"readings":{batch.readings_json}}}'
                    )
                    # Started in seq order (tasks run FIFO), awaited together: a backlog drains at the
                    # line's bandwidth, not at one broker round trip per batch.
                    publishes.append(client.publish(topics.readings(self.gateway_id), payload.encode(), qos=1))
                    (metrics.BATCHES_RESENT if batch.seq in expired else metrics.BATCHES_PUBLISHED).inc()
                    self._in_flight[batch.seq] = time.monotonic()
                await asyncio.gather(*publishes)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.collector.new_batch.wait(), timeout=min(1.0, timeout))

    async def _heartbeat(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        collector = self.collector
        while not stop.is_set():
            beat = Heartbeat(
                gateway_id=self.gateway_id,
                at=timeutil.now_jst(),
                uptime_s=round(time.monotonic() - collector.started, 1),
                firmware=self.settings.firmware,
                module_family=collector.link.module_family,  # type: ignore[arg-type]
                rssi_dbm=collector.link.signal_dbm,
                lqi=collector.link.lqi,
                read_errors_total=collector.read_errors,
                outbox_depth=self.outbox.depth(),
                last_slot_end=collector.last_slot_end,
                power_interval_s=collector.power_interval_s,
                heartbeat_interval_s=collector.heartbeat_interval_s,
            )
            await client.publish(topics.heartbeat(self.gateway_id), beat.to_json(), qos=0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=collector.heartbeat_interval_s)
