"""The collector's MQTT side: presence, the in-order pump with cumulative acks, heartbeats, and
the control channel (config/desired, cmd/req), all on the one connection the gateway dials out.

The uplink owns the MQTT client and translates between topics and the contract models; what a
heartbeat says, what a command does and how a configuration is applied are handed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from pydantic import ValidationError

from pms_collector import metrics
from pms_collector.outbox import Outbox
from pms_collector.readings_json import readings_batch_payload
from pms_common import timeutil, topics
from pms_common.contract_reader import ContractReader
from pms_common.health import Health
from pms_common.messages import (
    Ack,
    CommandRequest,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    GatewayStatus,
    Heartbeat,
    UpdateJob,
    UpdateReport,
)
from pms_common.mqtt import (
    Backoff,
    BrokerAddress,
    SubscriptionRefused,
    is_login_refused,
    refused_in_suback,
    run_connected,
)

log = logging.getLogger(__name__)

HeartbeatSource = Callable[[], Heartbeat]
# Unacked resends back off to this many times the resend timeout (15 s: two minutes).
MAX_RESEND_BACKOFF = 8
CommandHandler = Callable[[CommandRequest], Awaitable[CommandResult]]
# Unknown fields (a newer cloud's) are dropped and counted, never a cause to refuse a message.
READER = ContractReader("collector", metrics.UNKNOWN_FIELDS)


class ConfigHandler(Protocol):
    def apply_config(self, desired: ConfigDesired) -> ConfigReported | None:
        """Apply a desired configuration; the one now in effect, or None when nothing changed."""

    def reported_config(self) -> ConfigReported:
        """The configuration in effect."""


class UpdateChannel(Protocol):
    """The update agent as the uplink sees it: jobs in, reports (retained, in order) out."""

    report_added: asyncio.Event

    def on_job(self, job: UpdateJob | None) -> None: ...
    def pending_reports(self) -> list[UpdateReport]: ...
    def sent(self, report: UpdateReport) -> None: ...


class IncomingMessage(Protocol):
    @property
    def topic(self) -> object: ...  # str() gives the topic name
    @property
    def payload(self) -> object: ...


class MqttClient(Protocol):
    """The part of aiomqtt's client the uplink uses."""

    pending_calls_threshold: int

    @property
    def messages(self) -> AsyncIterator[IncomingMessage]: ...
    async def subscribe(self, topic: list[tuple[str, int]], /) -> object: ...
    async def publish(self, topic: str, /, payload: bytes, qos: int = 0, retain: bool = False) -> None: ...


Connect = Callable[[aiomqtt.Will], AbstractAsyncContextManager[MqttClient]]


class _Stopping(Exception):
    """Raised inside the session's task group to end it when the service is asked to stop."""


# What a gateway subscribes at (acks, desired config, commands, update jobs, the claim's answer).
# Its sessions are clean, so a QoS 1 subscription guarantees nothing a QoS 0 one does not: either
# way a delivery cut off by a dropped connection is gone with the session, and each of these
# recovers by itself (an unacked batch is resent, config and update jobs are retained and come
# again on the next subscribe, an older reported config makes the device-manager publish again, a
# command unanswered times out). What QoS 1 would cost is real on the NATS cluster: there every
# QoS 1 subscription is a JetStream consumer created through the meta leader on each connect and
# deleted on each disconnect: 5,000 gateways (three subscriptions each) connecting made the cluster
# time out creating consumers and refuse subscriptions (SUBACK 0x80). At QoS 0 NATS delivers over
# plain subscriptions (docs/scale.md, docs/fleet-bench.md).
SUBSCRIPTION_QOS = 0


class Uplink:
    def __init__(self, outbox: Outbox, *, heartbeat: HeartbeatSource, commands: CommandHandler,
                 config: ConfigHandler, batch_stored: asyncio.Event, health: Health, gateway_id: str,
                 broker: BrokerAddress, client_id: str, max_in_flight: int, resend_timeout_s: float,
                 connect: Connect | None = None, heartbeat_due: asyncio.Event | None = None,
                 on_login_refused: Callable[[], None] | None = None, updates: UpdateChannel | None = None) -> None:
        self.outbox = outbox
        self.updates = updates
        self.batches_acked = 0  # since the start: a trial boot's health needs one
        self.heartbeat = heartbeat
        # Set when what the heartbeat says has changed (of the meter: its scale, its clock, its history):
        # the next heartbeat goes at once, so an episode shorter than the interval is reported too.
        self.heartbeat_due = heartbeat_due or asyncio.Event()
        self.commands = commands
        self.config = config
        # Set when the outbox has a new batch, or room was made for more in flight: the pump looks again.
        self.batch_stored = batch_stored
        self.health = health
        self.gateway_id = gateway_id
        self.broker = broker
        self.client_id = client_id
        self.max_in_flight = max_in_flight
        self.resend_timeout_s = resend_timeout_s
        self._connect: Connect = connect or self._connect_to_broker
        # Called when the broker refuses the login (a provisioned gateway then claims again: main.py).
        self.on_login_refused = on_login_refused
        self._in_flight: dict[int, float] = {}
        self._resend_after_s = resend_timeout_s  # grows while resends go unacked (see _pump)

    def _connect_to_broker(self, will: aiomqtt.Will) -> aiomqtt.Client:
        return self.broker.client(identifier=self.client_id, will=will, clean_session=True)

    def _status(self, state: str, reason: str | None) -> bytes:
        at = None if state == "offline" and reason == "connection lost" else timeutil.now_jst()
        return GatewayStatus(gateway_id=self.gateway_id, state=state, reason=reason, at=at).to_json()  # type: ignore[arg-type]

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(initial_s=1.0, maximum_s=120.0)

        async def session() -> None:
            will = aiomqtt.Will(topics.status(self.gateway_id), self._status("offline", "connection lost"),
                                qos=1, retain=True)
            try:
                async with self._connect(will) as client:
                    backoff.reset()
                    await self.serve(client, stop)
            except MqttConnectError as exc:
                if is_login_refused(exc):
                    log.error("%s: the broker refuses this gateway's login (%s)", self.gateway_id, exc)
                    if self.on_login_refused is not None:
                        self.on_login_refused()
                raise

        connected = asyncio.create_task(
            run_connected(f"collector {self.gateway_id}", session, backoff=backoff, on_disconnect=self._disconnected))
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

    def _disconnected(self) -> None:
        self.health.set(f"mqtt:{self.gateway_id}", False)
        metrics.CONNECTED.labels(self.gateway_id).set(0)

    async def serve(self, client: MqttClient, stop: asyncio.Event) -> None:
        """One connection's life: announce, subscribe, then pump, beat and answer until `stop`."""
        # A backlog goes out max_in_flight batches at a time by design (plus a heartbeat or a
        # command result): that many publishes awaiting PUBACK are no cause for aiomqtt's warning.
        client.pending_calls_threshold = self.max_in_flight + 10
        self._in_flight.clear()  # nothing sent on the old connection is known to have arrived
        self.health.set(f"mqtt:{self.gateway_id}", True)
        metrics.CONNECTED.labels(self.gateway_id).set(1)
        leaves = ("ack", "config/desired", "cmd/req") + (("update/job",) if self.updates is not None else ())
        # One SUBSCRIBE for all of them: one round trip per connect, not one per topic.
        subscriptions = [(topics.gateway(self.gateway_id, leaf), SUBSCRIPTION_QOS) for leaf in leaves]
        granted = await client.subscribe(subscriptions)
        if refused_in_suback(granted):
            # Without its ack subscription the gateway would publish and never see an ack: its
            # outbox would fill and every batch be resent forever. Connect again instead (with
            # backoff); a cluster that could not make the subscription in time usually can then.
            metrics.SUBSCRIPTIONS_REFUSED.inc()
            raise SubscriptionRefused(f"the broker refused a subscription of {[t for t, _ in subscriptions]}: "
                                      f"granted {granted}")
        await client.publish(topics.status(self.gateway_id), self._status("online", None), qos=1, retain=True)
        await self._report_config(client, self.config.reported_config())
        log.info("%s: connected to %s:%d", self.gateway_id, self.broker.host, self.broker.port)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._consume(client, group))
                group.create_task(self._pump(client, stop))
                group.create_task(self._heartbeat(client, stop))
                if self.updates is not None:
                    group.create_task(self._update_reports(client, self.updates))
                await stop.wait()
                raise _Stopping
        except* _Stopping:
            await client.publish(topics.status(self.gateway_id), self._status("offline", "shutdown"),
                                 qos=1, retain=True)
        finally:
            self._disconnected()

    async def _report_config(self, client: MqttClient, reported: ConfigReported) -> None:
        await client.publish(topics.gateway(self.gateway_id, "config/reported"), reported.to_json(),
                             qos=1, retain=True)

    async def _consume(self, client: MqttClient, group: asyncio.TaskGroup) -> None:
        async for message in client.messages:
            leaf = topics.split_gateway_topic(str(message.topic))
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                if leaf == (self.gateway_id, "ack"):
                    self._on_ack(READER.parse(Ack, payload))
                elif leaf == (self.gateway_id, "config/desired"):
                    reported = self.config.apply_config(READER.parse(ConfigDesired, payload))
                    if reported is not None:
                        await self._report_config(client, reported)
                elif leaf == (self.gateway_id, "update/job") and self.updates is not None:
                    # An empty retained payload withdraws the job.
                    self.updates.on_job(READER.parse(UpdateJob, payload) if payload else None)
                elif leaf == (self.gateway_id, "cmd/req"):
                    request = READER.parse(CommandRequest, payload)
                    # Commands may take a while (a backfill): the acks must keep flowing meanwhile.
                    group.create_task(self._answer(client, request))
            except ValidationError as exc:
                log.warning("%s: ignoring a bad message on %s: %s", self.gateway_id, message.topic,
                            exc.errors()[0]["msg"])

    async def _update_reports(self, client: MqttClient, updates: UpdateChannel) -> None:
        """Publish the update agent's reports in order, retained; one not sent goes on the next connection."""
        while True:
            updates.report_added.clear()
            for report in updates.pending_reports():
                await client.publish(topics.update_state(self.gateway_id), report.to_json(), qos=1, retain=True)
                updates.sent(report)
            await updates.report_added.wait()

    async def _answer(self, client: MqttClient, request: CommandRequest) -> None:
        result = await self.commands(request)
        await client.publish(topics.gateway(self.gateway_id, "cmd/res"), result.to_json(), qos=1)

    def _on_ack(self, ack: Ack) -> None:
        if ack.stream_id != self.outbox.stream_id or ack.gateway_id != self.gateway_id:
            return
        deleted = self.outbox.ack(ack.acked_seq, ack.stored_ranges)
        metrics.BATCHES_ACKED.inc(deleted)
        self.batches_acked += deleted
        if deleted:
            self._resend_after_s = self.resend_timeout_s  # acks are flowing again
        for seq in [s for s in self._in_flight if s <= ack.acked_seq
                    or any(low <= s <= high for low, high in ack.stored_ranges)]:
            del self._in_flight[seq]
        metrics.OUTBOX_DEPTH.labels(self.gateway_id).set(self.outbox.depth())
        self.batch_stored.set()

    async def _pump(self, client: MqttClient, stop: asyncio.Event) -> None:
        """Publish outbox batches in order, at most max_in_flight unacked, resending after a timeout."""
        while not stop.is_set():
            self.batch_stored.clear()
            now = time.monotonic()
            timeout = self._resend_after_s
            expired = {seq for seq, sent in self._in_flight.items() if now - sent > timeout}
            if expired:
                # Resend from the oldest unacked on (what an ack deleted is not in the outbox to resend).
                self._in_flight.clear()
                # And wait twice as long for the next ack, up to MAX_RESEND_BACKOFF times the timeout,
                # until an ack comes: an ingest too slow to ack within the timeout would otherwise get
                # every batch again and again, fall further behind, and get them all again (seen at
                # pms up --plants 1000: the plants measured fell from 961 to 100).
                self._resend_after_s = min(timeout * 2, self.resend_timeout_s * MAX_RESEND_BACKOFF)
                timeout = self._resend_after_s
            room = self.max_in_flight - len(self._in_flight)
            if room > 0:
                floor = self.outbox.floor_seq()
                after = max(self._in_flight, default=0)
                publishes = []
                for batch in self.outbox.pending(limit=room, after_seq=after):
                    payload = readings_batch_payload(
                        gateway_id=self.gateway_id, stream_id=self.outbox.stream_id, seq=batch.seq,
                        outbox_floor_seq=floor, sent_at=timeutil.now_jst(), readings_json=batch.readings_json)
                    # Started in seq order (tasks run FIFO), awaited together: a backlog drains at the
                    # line's bandwidth, not at one broker round trip per batch.
                    publishes.append(client.publish(topics.readings(self.gateway_id), payload, qos=1))
                    (metrics.BATCHES_RESENT if batch.seq in expired else metrics.BATCHES_PUBLISHED).inc()
                    self._in_flight[batch.seq] = time.monotonic()
                await asyncio.gather(*publishes)
            # Until a new batch or an ack (batch_stored), or the oldest batch in flight is due for a
            # resend; with nothing in flight, only a new batch wakes the pump (`serve` cancels it on
            # stop): a thousand idle gateways in one process (`pms up`) must not each poll every second.
            oldest = min(self._in_flight.values(), default=None)
            resend_in = None if oldest is None else max(0.0, oldest + timeout - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.batch_stored.wait(), timeout=resend_in)

    async def _heartbeat(self, client: MqttClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.heartbeat_due.clear()
            beat = self.heartbeat()
            await client.publish(topics.heartbeat(self.gateway_id), beat.to_json(), qos=0)
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.heartbeat_due.wait())]
            try:
                await asyncio.wait(waiters, timeout=beat.heartbeat_interval_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
