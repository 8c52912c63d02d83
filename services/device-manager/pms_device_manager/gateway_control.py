"""The cloud side of gateway control: desired configuration (retained) and remote commands.

A gateway sits behind NAT and only dials out, so both travel over MQTT: `config/desired` is
published retained (a gateway that connects later still gets it), `config/reported` says which
version each gateway runs, and a command on `cmd/req` is answered on `cmd/res` with the same
correlation id before its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta

import aiomqtt
from prometheus_client import Counter
from pydantic import ValidationError

from pms_common import timeutil, topics
from pms_common.contract_reader import ContractReader
from pms_common.messages import CommandName, CommandRequest, CommandResult, ConfigDesired, ConfigReported
from pms_common.mqtt import Backoff, BrokerAddress, run_connected

log = logging.getLogger(__name__)
COMMANDS = Counter("pms_device_manager_commands_total", "Commands sent to gateways", ["command", "outcome"])
REPORTS = Counter("pms_device_manager_config_reports_total", "Configurations reported by gateways")
UNKNOWN_FIELDS = Counter("pms_device_manager_unknown_fields_total",
                         "Messages read with fields this version does not know (ignored)", ["message"])
# One reader for every message the device manager takes in (presence, reports, results).
READER = ContractReader("device-manager", UNKNOWN_FIELDS)
_REPORTED = topics.gateway("+", "config/reported")
_RESULTS = topics.gateway("+", "cmd/res")


class CommandTimeout(Exception):
    """The gateway did not answer before the command's deadline."""


class GatewayControl:
    def __init__(self, broker: BrokerAddress, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.reported: dict[str, ConfigReported] = {}
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._waiting: dict[str, asyncio.Future[CommandResult]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()

        async def session() -> None:
            async with self.broker.client(identifier=self.client_id, clean_session=True) as client:
                backoff.reset()
                await client.subscribe(_REPORTED, qos=1)
                await client.subscribe(_RESULTS, qos=1)
                self._client = client
                self.connected.set()
                try:
                    consume = asyncio.create_task(self._consume(client))
                    await stop.wait()
                    consume.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await consume
                finally:
                    self.connected.clear()
                    self._client = None

        await run_connected("device-manager control", session, backoff=backoff)

    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            parts = topics.split_gateway_topic(str(message.topic))
            if parts is None or not isinstance(message.payload, bytes):
                continue
            gateway_id, leaf = parts
            try:
                if leaf == "config/reported":
                    self.reported[gateway_id] = READER.parse(ConfigReported, message.payload)
                    REPORTS.inc()
                elif leaf == "cmd/res":
                    result = READER.parse(CommandResult, message.payload)
                    waiter = self._waiting.get(result.correlation_id)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(result)
            except ValidationError as exc:
                log.warning("bad %s from %s: %s", leaf, gateway_id, exc.errors()[0]["msg"])

    async def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        await asyncio.wait_for(self.connected.wait(), 30)
        assert self._client is not None
        await self._client.publish(topic, payload, qos=1, retain=retain)

    async def push_config(self, gateway_id: str, desired: ConfigDesired) -> None:
        await self._publish(topics.gateway(gateway_id, "config/desired"), desired.to_json(), retain=True)

    async def clear_config(self, gateway_id: str) -> None:
        """Remove the retained desired configuration (a decommissioned gateway)."""
        await self._publish(topics.gateway(gateway_id, "config/desired"), b"", retain=True)

    async def command(self, gateway_id: str, command: CommandName, args: dict[str, object] | None = None,
                      *, timeout_s: float = 30.0) -> CommandResult:
        """Send a command and wait for its result; CommandTimeout when none comes by the deadline."""
        request = CommandRequest(correlation_id=str(uuid.uuid4()), command=command, args=args or {},
                                 deadline=timeutil.now_jst() + timedelta(seconds=timeout_s))
        waiter: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        self._waiting[request.correlation_id] = waiter
        try:
            await self._publish(topics.gateway(gateway_id, "cmd/req"), request.to_json())
            # A little past the deadline: the gateway's "deadline passed" answer is worth waiting for.
            result = await asyncio.wait_for(waiter, timeout_s + 5)
        except TimeoutError:
            COMMANDS.labels(command, "timeout").inc()
            raise CommandTimeout(f"{gateway_id} did not answer {command} within {timeout_s:.0f} s") from None
        finally:
            self._waiting.pop(request.correlation_id, None)
        COMMANDS.labels(command, "ok" if result.ok else "failed").inc()
        return result
