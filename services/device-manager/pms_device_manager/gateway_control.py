"""The cloud side of gateway control: desired configurations (retained) and remote commands, driven
from the registry.

A gateway sits behind NAT and only dials out, so both travel over MQTT: `config/desired` is
published retained (a gateway that connects later still gets it), `config/reported` carries each
gateway's whole effective configuration, and a command on `cmd/req` is answered on `cmd/res` with
the same correlation id (the command's id) before its deadline.

The API writes desired documents and queued commands to the registry; this loop publishes what is
new (every `poll_s`), records every report and answer, and expires what outlived its deadline. It
keeps nothing in memory that a restart would lose: its MQTT session is persistent (a fixed client
id, clean_session off, QoS 1), so answers published while it was down wait at the broker for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import aiomqtt
from prometheus_client import Counter
from pydantic import ValidationError

from pms_common import timeutil, topics
from pms_common.contract_reader import ContractReader
from pms_common.messages import CommandRequest, CommandResult, ConfigDesired, ConfigReported, GatewayStatus
from pms_common.mqtt import Backoff, BrokerAddress, run_connected, serve_until_stopped
from pms_registry import Registry, RegistryError
from pms_registry.gateway_control import CommandRecord, DesiredConfig

log = logging.getLogger(__name__)
COMMANDS = Counter("pms_device_manager_commands_total", "Commands that ended, by outcome",
                   ["command", "outcome"])
COMMANDS_SENT = Counter("pms_device_manager_commands_sent_total", "Commands published to gateways")
CONFIGS_PUBLISHED = Counter("pms_device_manager_configs_published_total", "Desired configurations published")
REPORTS = Counter("pms_device_manager_config_reports_total", "Configurations reported by gateways")
BAD_CONTROL = Counter("pms_device_manager_bad_control_messages_total",
                      "Reports and command results that broke the contract (ignored)", ["leaf"])
UNKNOWN_FIELDS = Counter("pms_device_manager_unknown_fields_total",
                         "Messages read with fields this version does not know (ignored)", ["message"])
# One reader for every message the device manager takes in (presence, reports, results).
READER = ContractReader("device-manager", UNKNOWN_FIELDS)
_REPORTED = topics.gateway("+", "config/reported")
_RESULTS = topics.gateway("+", "cmd/res")


def desired_message(desired: DesiredConfig) -> ConfigDesired:
    document = desired.document
    return ConfigDesired(version=desired.version, power_interval_s=document["power_interval_s"],
                         heartbeat_interval_s=document["heartbeat_interval_s"],
                         energy_interval_s=document.get("energy_interval_s"), log_level=document.get("log_level"))


def request_message(command: CommandRecord) -> CommandRequest:
    return CommandRequest(correlation_id=command.command_id, command=command.command,
                          args=command.args, deadline=command.deadline)


class GatewayControl:
    def __init__(self, broker: BrokerAddress, client_id: str, registry: Registry, *, poll_s: float = 1.0,
                 answer_grace_s: float = 2.0) -> None:
        self.broker = broker
        self.client_id = client_id  # fixed: the broker keeps this session's subscriptions and queue
        self.registry = registry
        self.poll_s = poll_s
        # A sent command expires this long after its deadline without an answer, so that the
        # gateway's own "did not finish before its deadline" (which says more) arrives first.
        self.answer_grace = timedelta(seconds=answer_grace_s)
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()

        async def session() -> None:
            async with self.broker.client(identifier=self.client_id, clean_session=False) as client:
                backoff.reset()
                await client.subscribe(_REPORTED, qos=1)
                await client.subscribe(_RESULTS, qos=1)
                self._client = client
                self.connected.set()
                try:
                    await serve_until_stopped(stop, self._consume(client), self._dispatch(stop))
                finally:
                    self.connected.clear()
                    self._client = None

        # Expiry does not wait for the broker: a command whose deadline passed while the broker was
        # unreachable is closed all the same.
        expiry = asyncio.create_task(self._expire(stop))
        connected = asyncio.create_task(run_connected("device-manager control", session, backoff=backoff))
        try:
            await stop.wait()
            # A connected session ends by itself; one waiting out a reconnect backoff is cancelled.
            await asyncio.wait({connected, expiry}, timeout=5)
        finally:
            for task in (connected, expiry):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # ---- registry → gateways ---------------------------------------------------------------------
    async def _dispatch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.publish_pending()
            except RegistryError as exc:  # the registry is down for a moment: try again next turn
                log.warning("device-manager control: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)

    async def publish_pending(self) -> None:
        """Publish desired versions not yet published, and queued commands of online gateways."""
        pending = await asyncio.to_thread(self.registry.unpublished_desired_configs)
        if pending:
            # All at once (a group push is hundreds): the broker acks them in one round of the line.
            await asyncio.gather(*(self._publish(topics.gateway(d.gateway_id, "config/desired"),
                                                 desired_message(d).to_json(), retain=True) for d in pending))
            await asyncio.to_thread(self.registry.mark_desired_published, [(d.gateway_id, d.version) for d in pending])
            CONFIGS_PUBLISHED.inc(len(pending))
        now = timeutil.now_jst()
        for command in await asyncio.to_thread(self.registry.commands_to_send, now):
            # Marked sent before it goes out: a crash in between leaves it `sent` (it then expires
            # for want of an answer) rather than sending a rejoin twice.
            if not await asyncio.to_thread(self.registry.mark_command_sent, command.command_id, now):
                continue
            await self._publish(topics.gateway(command.gateway_id, "cmd/req"), request_message(command).to_json())
            COMMANDS_SENT.inc()

    async def _publish_desired(self, desired: DesiredConfig) -> None:
        await self._publish(topics.gateway(desired.gateway_id, "config/desired"), desired_message(desired).to_json(),
                            retain=True)
        await asyncio.to_thread(self.registry.mark_desired_published, [(desired.gateway_id, desired.version)])
        CONFIGS_PUBLISHED.inc()

    async def _expire(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                expired = await asyncio.to_thread(self.registry.expire_commands, timeutil.now_jst(),
                                                  sent_grace=self.answer_grace)
            except RegistryError as exc:
                log.warning("device-manager control: %s", exc)
                expired = []
            for command in expired:
                COMMANDS.labels(command.command, "expired").inc()
                log.info("command %s (%s) to %s expired: %s", command.command_id, command.command,
                         command.gateway_id, command.reason)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)

    async def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("device-manager control is not connected")
        await client.publish(topic, payload, qos=1, retain=retain)

    async def announce_offline(self, gateway_id: str) -> None:
        """Publish the retained offline status of a gateway whose broker identity was revoked: the broker
        drops its client without publishing its will (the deleted login may no longer publish), so
        without this its retained status would say online for ever."""
        status = GatewayStatus(gateway_id=gateway_id, state="offline", at=timeutil.now_jst(), reason="connection lost")
        await self._publish(topics.status(gateway_id), status.to_json(), retain=True)

    async def clear_config(self, gateway_id: str) -> None:
        """Remove the retained desired configuration (a decommissioned gateway)."""
        await self._publish(topics.gateway(gateway_id, "config/desired"), b"", retain=True)

    # ---- gateways → registry ---------------------------------------------------------------------
    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            parts = topics.split_gateway_topic(str(message.topic))
            if parts is None or not isinstance(message.payload, bytes) or not message.payload:
                continue
            gateway_id, leaf = parts
            try:
                if leaf == "config/reported":
                    await self.on_report(gateway_id, READER.parse(ConfigReported, message.payload))
                elif leaf == "cmd/res":
                    await self.on_result(gateway_id, READER.parse(CommandResult, message.payload))
            except ValidationError as exc:
                BAD_CONTROL.labels(leaf).inc()
                log.warning("bad %s from %s: %s", leaf, gateway_id, exc.errors()[0]["msg"])

    async def on_report(self, gateway_id: str, reported: ConfigReported) -> None:
        REPORTS.inc()
        document = reported.model_dump(mode="json", exclude={"v"})
        state = await asyncio.to_thread(self.registry.record_reported_config, gateway_id, reported.version, document,
                                        timeutil.now_jst())
        desired = state.desired
        if desired is not None and reported.version < desired.version and desired.published_version == desired.version:
            # The gateway (re)connected and runs an older version than the one published: the
            # retained message may have been lost with a broker that kept none. Publish it again.
            await self._publish_desired(desired)

    async def on_result(self, gateway_id: str, result: CommandResult) -> None:
        finished = await asyncio.to_thread(self.registry.finish_command, result.correlation_id, ok=result.ok,
                                           at=timeutil.now_jst(), result=result.result, reason=result.error)
        if finished is None:
            log.info("%s answered command %s, which is unknown or over already", gateway_id, result.correlation_id)
            return
        COMMANDS.labels(finished.command, finished.state).inc()
