"""The subscriber loop shared by services that follow gateway presence (status + heartbeat)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import aiomqtt
from pydantic import ValidationError

from pms_common import timeutil, topics
from pms_common.contract_reader import ContractReader
from pms_common.health import Health
from pms_common.liveness import LivenessTracker, Transition, feed, parse_presence
from pms_common.messages import GatewayStatus, Heartbeat
from pms_common.mqtt import Backoff, BrokerAddress, run_connected

log = logging.getLogger(__name__)

OnMessage = Callable[[aiomqtt.Client, GatewayStatus | Heartbeat], Awaitable[None]]
OnTransition = Callable[[aiomqtt.Client, Transition], Awaitable[None]]
OnTick = Callable[[aiomqtt.Client], Awaitable[None]]
# A message on one of the `extra_topics` (topic, payload): the caller parses it.
OnOther = Callable[[aiomqtt.Client, str, bytes], Awaitable[None]]


async def follow_presence(
    *,
    name: str,
    broker: BrokerAddress,
    client_id: str,
    health: Health,
    stop: asyncio.Event,
    on_transition: OnTransition,
    on_message: OnMessage | None = None,
    tick_s: float = 5.0,
    missed_heartbeats: int = 3,
    bad_payload: Callable[[str, str], None] | None = None,
    on_tick: OnTick | None = None,
    reader: ContractReader | None = None,
    clock: Callable[[], datetime] = timeutil.now_jst,
    extra_topics: Sequence[tuple[str, int]] = (),
    on_other: OnOther | None = None,
) -> None:
    """Subscribe to every gateway's status and heartbeat and report liveness transitions.

    `on_tick`, when given, runs every tick with the connected client (for periodic rules); `reader`
    counts the payloads with fields this version does not know, on the caller's metric. `clock` is
    where the time of receptions and ticks comes from (alerts' scripted tests set a file clock).
    `extra_topics` are subscribed too (topic filter, QoS); their messages go to `on_other`.
    """
    reader = reader or ContractReader(name)
    tracker = LivenessTracker(missed_heartbeats=missed_heartbeats)
    backoff = Backoff()

    async def consume(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            if on_other is not None and any(message.topic.matches(topic) for topic, _ in extra_topics):
                await on_other(client, message.topic.value, payload)
                continue
            try:
                parsed = parse_presence(message.topic.value, payload, reader)
            except ValidationError as exc:
                reason = f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}"
                log.warning("%s: bad payload on %s: %s", name, message.topic.value, reason)
                if bad_payload is not None:
                    bad_payload(message.topic.value, reason)
                continue
            if parsed is None:
                continue
            if on_message is not None:
                await on_message(client, parsed)
            for transition in feed(tracker, parsed, clock()):
                await on_transition(client, transition)

    async def ticker(client: aiomqtt.Client) -> None:
        while not stop.is_set():
            for transition in tracker.on_tick(clock()):
                await on_transition(client, transition)
            if on_tick is not None:
                await on_tick(client)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick_s)

    async def session() -> None:
        async with broker.client(identifier=client_id, clean_session=True) as client:
            backoff.reset()
            await client.subscribe(topics.ALL_STATUS, qos=1)
            await client.subscribe(topics.ALL_HEARTBEATS, qos=0)
            for topic, qos in extra_topics:
                await client.subscribe(topic, qos=qos)
            health.set("mqtt", True)
            log.info("%s: following gateway presence on %s:%d", name, broker.host, broker.port)
            tasks = [asyncio.create_task(consume(client)), asyncio.create_task(ticker(client)),
                     asyncio.create_task(stop.wait())]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                for task in tasks:
                    task.cancel()
                health.set("mqtt", False)

    health.set("mqtt", False)
    await run_connected(name, session, backoff=backoff)
