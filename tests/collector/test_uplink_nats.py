"""The uplink against a real NATS server's MQTT listener: one that refuses one of its subscriptions
(SUBACK 0x80), where it connects again and never serves a session without its ack subscription; and
one that takes them, where it costs the server no JetStream consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiomqtt
import nats
import pytest

from pms_collector.outbox import Outbox
from pms_collector.readings_json import encode_readings
from pms_collector.uplink import Uplink
from pms_common import topics
from pms_common.health import Health
from pms_common.messages import Ack, ConfigDesired, ConfigReported, PowerReading, ReadingsBatch
from pms_common.mqtt import BrokerAddress
from pms_common.timeutil import now_jst
from tests.collector.uplink_peers import REFUSING_ACK_SUBSCRIPTION, NoConfig, heartbeat_of, no_commands
from tests.collector.waiting import eventually
from tests.nats_server import NatsServer, nats_server

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


class RecordingConfig(NoConfig):
    def __init__(self) -> None:
        self.applied: list[ConfigDesired] = []

    def apply_config(self, desired: ConfigDesired) -> ConfigReported | None:
        self.applied.append(desired)
        return None


async def _mqtt_consumers(server: NatsServer) -> int:
    """The JetStream consumers NATS made for MQTT QoS 1/2 subscriptions (one each, in `$MQTT_msgs`)."""
    connection = await nats.connect(server.nats_url)
    try:
        return (await connection.jetstream().stream_info("$MQTT_msgs")).state.consumer_count
    finally:
        await connection.close()


def test_a_gateway_on_nats_costs_no_jetstream_consumer_and_still_gets_its_acks_and_config(tmp_path: Path) -> None:
    """Each QoS 1 subscription on NATS is a JetStream consumer made through the meta leader on every
    connect; a fleet of gateways reconnecting at once made the cluster refuse subscriptions. The
    gateway subscribes at QoS 0 (uplink.SUBSCRIPTION_QOS): no consumer, and what the cloud sends it
    at QoS 1 (acks, a retained desired config) still arrives."""
    gw = "gw-nats-qos0"
    with nats_server(tmp_path / "nats") as server:
        broker = BrokerAddress.parse(server.mqtt_url)
        outbox = Outbox(tmp_path / "outbox.db", max_batches=100)
        config = RecordingConfig()
        uplink = Uplink(outbox, heartbeat=lambda: heartbeat_of(gw), commands=no_commands, config=config,
                        batch_stored=asyncio.Event(), health=Health(), gateway_id=gw, broker=broker,
                        client_id=gw, max_in_flight=10, resend_timeout_s=5)
        desired = ConfigDesired(version=3, power_interval_s=30, heartbeat_interval_s=30)
        consumers: dict[str, int] = {}

        async def main() -> None:
            async with aiomqtt.Client("127.0.0.1", server.mqtt_port, identifier="cloud") as cloud:
                await cloud.publish(topics.gateway(gw, "config/desired"), desired.to_json(), qos=1, retain=True)
                await cloud.subscribe(topics.readings(gw), qos=0)
                for watts in (100, 200, 300):
                    reading = PowerReading(measured_at=now_jst() - timedelta(seconds=watts), power_w=watts)
                    outbox.append(encode_readings([reading]), has_energy=False, now=0.0)
                stop = asyncio.Event()
                task = asyncio.create_task(uplink.run(stop))
                async with asyncio.timeout(20):
                    async for message in cloud.messages:
                        batch = ReadingsBatch.model_validate_json(message.payload)  # type: ignore[arg-type]
                        consumers["gateway connected"] = await _mqtt_consumers(server)
                        ack = Ack(gateway_id=gw, stream_id=batch.stream_id, acked_seq=batch.seq, at=now_jst())
                        await cloud.publish(topics.gateway(gw, "ack"), ack.to_json(), qos=1)
                        if batch.seq == 3:
                            break
                # The ack of batch 3 is on its way to the gateway.
                await eventually(lambda: outbox.depth() == 0, 10, "the outbox emptied by the acks")
                # The count is real: a client that does subscribe at QoS 1 gets a consumer.
                await cloud.subscribe(topics.status(gw), qos=1)
                consumers["a QoS 1 subscriber too"] = await _mqtt_consumers(server)
                stop.set()
                await asyncio.wait_for(task, 10)

        try:
            asyncio.run(main())
        finally:
            outbox.close()
        assert consumers == {"gateway connected": 0, "a QoS 1 subscriber too": 1}
        assert [d.version for d in config.applied] == [3]

