"""The uplink against a real NATS server's MQTT listener that refuses one of its subscriptions
(SUBACK 0x80): it connects again, never serves a session without its ack subscription."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from pms_collector.outbox import Outbox
from pms_collector.uplink import Uplink
from pms_common import topics
from pms_common.health import Health
from pms_common.mqtt import BrokerAddress
from tests.collector.uplink_peers import REFUSING_ACK_SUBSCRIPTION, NoConfig, heartbeat_of, no_commands
from tests.nats_server import nats_server

pytestmark = pytest.mark.integration

GW = "gw-nats-refused"
def test_a_refused_ack_subscription_makes_the_uplink_connect_again(tmp_path: Path) -> None:
    with nats_server(tmp_path / "nats", extra_conf=REFUSING_ACK_SUBSCRIPTION) as server:
        broker = BrokerAddress.parse(f"mqtt://gw:secret@127.0.0.1:{server.mqtt_port}")
        outbox = Outbox(tmp_path / "outbox.db", max_batches=100)
        health = Health()
        sessions: list[bool] = []
        online: list[bytes] = []

        @asynccontextmanager
        async def connect(will: aiomqtt.Will) -> AsyncIterator[aiomqtt.Client]:
            async with broker.client(identifier="gw-refused", will=will, clean_session=True) as client:
                sessions.append(True)
                yield client

        uplink = Uplink(outbox, heartbeat=lambda: heartbeat_of(GW), commands=no_commands, config=NoConfig(),
                        batch_stored=asyncio.Event(), health=health, gateway_id=GW, broker=broker,
                        client_id="gw-refused", max_in_flight=10, resend_timeout_s=5, connect=connect)

        async def main() -> None:
            async with aiomqtt.Client("127.0.0.1", server.mqtt_port, username="gw", password="secret",
                                      identifier="watcher") as watcher:
                await watcher.subscribe(topics.status(GW), qos=1)
                stop = asyncio.Event()
                task = asyncio.create_task(uplink.run(stop))

                async def watch() -> None:
                    async for message in watcher.messages:
                        online.append(message.payload if isinstance(message.payload, bytes) else b"")

                watching = asyncio.create_task(watch())
                # The backoff starts at 1 s (with jitter): two connections within a few seconds.
                for _ in range(100):
                    if len(sessions) >= 2:
                        break
                    await asyncio.sleep(0.1)
                stop.set()
                await asyncio.wait_for(task, 10)
                watching.cancel()

        try:
            asyncio.run(main())
        finally:
            outbox.close()
        assert len(sessions) >= 2, "the uplink did not connect again after the refused subscription"
        # It never announced itself online: the session ended at the refused SUBACK.
        assert not any(b'"online"' in payload for payload in online), online
        assert health.snapshot().get(f"mqtt:{GW}") is not True
