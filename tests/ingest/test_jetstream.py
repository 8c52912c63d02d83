"""Ingest's JetStream source against a real nats-server (one node, JetStream, R1): replicas share the
durable consumer, ack after the write, what a dead replica held is delivered again, bad payloads go
to the dead letters, acks reach the gateways' MQTT subscriptions."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import nats
import pytest

from pms_common import timeutil, topics
from pms_common.health import Health
from pms_common.messages import Ack, PowerReading, ReadingsBatch
from pms_ingest.jetstream import CONSUMER, STREAM, JetStreamIngest, subject_of_topic, topic_of_subject
from pms_ingest.settings import IngestSettings
from pms_store import GatewayReadings, StoreError, WriteOutcome
from tests.nats_server import NatsServer, nats_server

pytestmark = pytest.mark.integration

T0 = datetime(2026, 6, 1, 12, tzinfo=timeutil.JST)


class RecordingStore:
    """Records every batch written (gateway, first reading's time); fails writes while `down`."""

    def __init__(self) -> None:
        self.written: list[tuple[str, str]] = []
        self.down = False
        self._lock = threading.Lock()

    def write_many(self, batches: Sequence[GatewayReadings]) -> list[WriteOutcome]:
        if self.down:
            raise StoreError("the store is down")
        with self._lock:
            self.written.extend((b.gateway_id, b.power[0].measured_at.isoformat()) for b in batches)
        return [WriteOutcome(power_written=len(b.power)) for b in batches]

    def write_weather(self, weather: Sequence[Any]) -> None:
        pass

    def write_expected(self, expected: Sequence[Any]) -> None:
        pass

    def close(self) -> None:
        pass


def batch(gw: str, seq: int) -> bytes:
    return ReadingsBatch(gateway_id=gw, stream_id="0123456789abcdef", seq=seq, outbox_floor_seq=1,
                         sent_at=T0, readings=[PowerReading(measured_at=T0 + timedelta(seconds=seq),
                                                            power_w=-seq)]).to_json()


def settings(server: NatsServer, **overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {"ingest_source": "jetstream", "nats_url": f"nats://127.0.0.1:1,{server.nats_url}",
                              "jetstream_replicas": 1, "jetstream_ack_wait_s": 2.0, "store_retry_s": 0.2,
                              "mqtt_client_id": "test"}
    values.update(overrides)
    return IngestSettings(**values)


@asynccontextmanager
async def replica(server: NatsServer, store: RecordingStore, **overrides: Any) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(JetStreamIngest(settings(server, **overrides), store, Health()).run(stop))  # type: ignore[arg-type]
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def eventually(check: Any, timeout_s: float = 20) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within the time")


async def consumer_made(js: Any) -> None:
    """Wait for a replica to have made the stream and its consumer (publishes before are not kept)."""
    for _ in range(200):
        try:
            await js.consumer_info(STREAM, CONSUMER)
            return
        except nats.errors.Error:
            await asyncio.sleep(0.05)
    raise AssertionError("no replica made the consumer")


def test_subjects_and_topics_map_as_nats_maps_them() -> None:
    assert subject_of_topic("pms/v1/gw/gw-1/readings") == "pms.v1.gw.gw-1.readings"
    assert subject_of_topic("pms/v1/gw/gw.1/ack") == "pms.v1.gw.gw//1.ack"
    assert topic_of_subject("pms.v1.gw.gw//1.readings") == "pms/v1/gw/gw.1/readings"


def test_the_settings_names_are_the_ones_the_manifests_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMS_INGEST_SOURCE", "jetstream")
    monkeypatch.setenv("PMS_NATS_URL", "nats://a:4222, nats://b:4222")
    parsed = IngestSettings()
    assert parsed.ingest_source == "jetstream"
    assert parsed.nats_servers() == ["nats://a:4222", "nats://b:4222"]
    monkeypatch.delenv("PMS_INGEST_SOURCE")
    assert IngestSettings().ingest_source == "mqtt"


def test_the_nats_login_is_taken_out_of_the_urls_and_given_for_every_server() -> None:
    parsed = IngestSettings(nats_url="nats://a:4222,nats://ingest:p%40ss@nats-1:4222, nats://[::1]:4222")
    assert parsed.nats_servers() == ["nats://a:4222", "nats://nats-1:4222", "nats://[::1]:4222"]
    assert parsed.nats_login() == ("ingest", "p@ss")
    assert IngestSettings(nats_url="nats://a:4222").nats_login() == (None, None)


def test_a_server_named_without_the_login_is_logged_in_to_with_it(tmp_path: Path) -> None:
    """The cluster's advertised servers come without a login; nats-py used the URL's login only for the
    URL it was written in, so a replica moved to another node was refused (Authorization Violation)."""
    store = RecordingStore()
    login = 'authorization { users: [ {user: ingest, password: "s3cret"} ] }'

    async def main(server: NatsServer) -> None:
        connection = await nats.connect(server.nats_url, user="ingest", password="s3cret")
        js = connection.jetstream()
        # The login is written on a server that is down; the live one is named without it.
        async with replica(server, store, nats_url=f"nats://ingest:s3cret@127.0.0.1:1,{server.nats_url}"):
            await consumer_made(js)
            await js.publish(subject_of_topic(topics.readings("gw-login")), batch("gw-login", 1))
            await eventually(lambda: len(store.written) == 1)
        await connection.close()

    with nats_server(tmp_path / "nats", extra_conf=login) as server:
        asyncio.run(main(server))


def test_two_replicas_share_the_consumer_each_batch_stored_once_and_the_gateways_acked(tmp_path: Path) -> None:
    stores = [RecordingStore(), RecordingStore()]
    gateways = [f"gw-{i}" for i in range(10)]
    per_gateway = 30

    async def main(server: NatsServer) -> dict[str, set[int]]:
        connection = await nats.connect(server.nats_url)
        # Each replica acks what it stored: the cumulative point and the ranges beyond it.
        acked: dict[str, set[int]] = {gw: set() for gw in gateways}

        async def on_ack(message: Any) -> None:
            ack = Ack.model_validate_json(message.data)
            acked[ack.gateway_id].update(range(1, ack.acked_seq + 1))
            for low, high in ack.stored_ranges:
                acked[ack.gateway_id].update(range(low, high + 1))

        await connection.subscribe(subject_of_topic(topics.ack("*")), cb=on_ack)
        async with replica(server, stores[0]), replica(server, stores[1]):
            js = connection.jetstream()
            await consumer_made(js)
            for seq in range(1, per_gateway + 1):
                for gw in gateways:
                    await js.publish(subject_of_topic(topics.readings(gw)), batch(gw, seq))
            await eventually(lambda: all(len(acked[gw]) == per_gateway for gw in gateways))
            # Work-queue retention: what both replicas acked is gone from the stream.
            info = await js.stream_info(STREAM)
            for _ in range(100):
                if info.state.messages == 0:
                    break
                await asyncio.sleep(0.05)
                info = await js.stream_info(STREAM)
            assert info.state.messages == 0
        await connection.close()
        return acked

    with nats_server(tmp_path / "nats") as server:
        asyncio.run(main(server))
    written = Counter(stores[0].written + stores[1].written)
    assert len(written) == len(gateways) * per_gateway  # nothing lost
    assert max(written.values()) == 1  # and nothing written twice (no replica died)
    assert stores[0].written and stores[1].written, "both replicas pulled batches"


def test_what_a_dead_replica_fetched_and_did_not_ack_is_stored_by_another(tmp_path: Path) -> None:
    store = RecordingStore()

    async def main(server: NatsServer) -> None:
        connection = await nats.connect(server.nats_url)
        js = connection.jetstream()
        async with replica(server, RecordingStore()):
            await consumer_made(js)
        # The replica is gone; a "replica" that pulls and dies before its write takes five batches.
        for seq in range(1, 6):
            await js.publish(subject_of_topic(topics.readings("gw-x")), batch("gw-x", seq))
        dying = await js.pull_subscribe_bind(durable=CONSUMER, stream=STREAM)
        taken = await dying.fetch(5, timeout=5)
        # Usually all five; one may have gone to the stopped replica's last pull request (it
        # lingers on the server up to its expiry), which is just as unacked.
        assert taken
        async with replica(server, store):
            # Delivered again once the ack wait (2 s here) has passed, to the live replica.
            await eventually(lambda: len(store.written) == 5)
        await connection.close()

    with nats_server(tmp_path / "nats") as server:
        asyncio.run(main(server))
    assert sorted(seq for _, seq in store.written) == sorted((T0 + timedelta(seconds=s)).isoformat()
                                                             for s in range(1, 6))


def test_a_failed_write_is_not_acked_and_is_stored_when_the_store_is_back(tmp_path: Path) -> None:
    store = RecordingStore()
    store.down = True

    async def main(server: NatsServer) -> None:
        connection = await nats.connect(server.nats_url)
        js = connection.jetstream()
        async with replica(server, store):
            await consumer_made(js)
            await js.publish(subject_of_topic(topics.readings("gw-y")), batch("gw-y", 1))
            await asyncio.sleep(1)
            assert store.written == []
            store.down = False
            await eventually(lambda: len(store.written) == 1)
        await connection.close()

    with nats_server(tmp_path / "nats") as server:
        asyncio.run(main(server))


def test_a_bad_payload_goes_to_the_dead_letters_and_leaves_the_stream(tmp_path: Path) -> None:
    async def main(server: NatsServer) -> list[dict[str, Any]]:
        connection = await nats.connect(server.nats_url)
        letters: list[dict[str, Any]] = []

        async def on_letter(message: Any) -> None:
            letters.append(json.loads(message.data))

        await connection.subscribe(subject_of_topic(topics.deadletter("ingest")), cb=on_letter)
        js = connection.jetstream()
        async with replica(server, RecordingStore()):
            await consumer_made(js)
            await js.publish(subject_of_topic(topics.readings("gw-z")), b"{not json")
            await eventually(lambda: len(letters) == 1)
            for _ in range(100):
                if (await js.stream_info(STREAM)).state.messages == 0:
                    break
                await asyncio.sleep(0.05)
            assert (await js.stream_info(STREAM)).state.messages == 0
        await connection.close()
        return letters

    with nats_server(tmp_path / "nats") as server:
        letters = asyncio.run(main(server))
    assert letters[0]["topic"] == "pms/v1/gw/gw-z/readings"
    assert letters[0]["reason"]


def test_a_gateway_publishing_over_mqtt_is_stored_and_acked_over_mqtt(tmp_path: Path) -> None:
    store = RecordingStore()

    async def main(server: NatsServer) -> Ack:
        connection = await nats.connect(server.nats_url)
        js = connection.jetstream()
        async with replica(server, store):
            await consumer_made(js)
            async with aiomqtt.Client("127.0.0.1", server.mqtt_port, identifier="gw-m") as gateway:
                await gateway.subscribe(topics.ack("gw-m"), qos=1)
                await gateway.publish(topics.readings("gw-m"), batch("gw-m", 1), qos=1)
                async with asyncio.timeout(20):
                    async for message in gateway.messages:
                        assert isinstance(message.payload, bytes)
                        ack = Ack.model_validate_json(message.payload)
                        break
        await connection.close()
        return ack

    with nats_server(tmp_path / "nats") as server:
        ack = asyncio.run(main(server))
    assert (ack.gateway_id, ack.acked_seq) == ("gw-m", 1)
    assert store.written == [("gw-m", (T0 + timedelta(seconds=1)).isoformat())]
