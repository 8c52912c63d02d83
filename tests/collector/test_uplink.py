"""The uplink against an in-memory MQTT client: what it publishes, and what it does with what arrives."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import aiomqtt

from pms_collector.outbox import Outbox, PendingBatch
from pms_collector.readings_json import encode_readings
from pms_collector.uplink import Uplink
from pms_common import topics
from pms_common.health import Health
from pms_common.messages import (
    Ack,
    CommandRequest,
    CommandResult,
    ConfigDesired,
    ConfigReported,
    GatewayStatus,
    Heartbeat,
    PowerReading,
    ReadingsBatch,
)
from pms_common.mqtt import BrokerAddress
from pms_common.timeutil import JST, now_jst
from tests.collector.waiting import eventually

GW = "gw-uplink"
AT = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


@dataclass
class Published:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass
class Incoming:
    topic: str
    payload: bytes


@dataclass
class FakeMqttClient:
    """The calls the uplink makes of aiomqtt's client, recorded; messages are delivered by the test."""

    pending_calls_threshold: int = 10
    subscribed: list[tuple[str, int]] = field(default_factory=list)
    subscribe_packets: int = 0
    published: list[Published] = field(default_factory=list)
    inbox: asyncio.Queue[Incoming] = field(default_factory=asyncio.Queue)

    @property
    def messages(self) -> AsyncIterator[Incoming]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Incoming]:
        while True:
            yield await self.inbox.get()

    async def subscribe(self, topic: list[tuple[str, int]], /) -> None:
        self.subscribe_packets += 1
        self.subscribed.extend(topic)

    async def publish(self, topic: str, /, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        await asyncio.sleep(0)  # a round trip: publishes started together finish together
        self.published.append(Published(topic, payload, qos, retain))

    def deliver(self, leaf: str, payload: bytes) -> None:
        self.inbox.put_nowait(Incoming(topics.gateway(GW, leaf), payload))

    def on(self, leaf: str) -> list[bytes]:
        return [p.payload for p in self.published if p.topic == topics.gateway(GW, leaf)]

    def batches(self) -> list[ReadingsBatch]:
        return [ReadingsBatch.model_validate_json(p) for p in self.on("readings")]


class FakeControl:
    def __init__(self) -> None:
        self.requests: list[CommandRequest] = []
        self.config = ConfigReported(version=0, power_interval_s=60, heartbeat_interval_s=30, applied_at=AT)

    async def execute(self, request: CommandRequest) -> CommandResult:
        self.requests.append(request)
        return CommandResult(correlation_id=request.correlation_id, ok=True, result={"echo": request.args}, at=AT)

    def apply_config(self, desired: ConfigDesired) -> ConfigReported | None:
        if desired.version <= self.config.version:
            return None
        self.config = ConfigReported(version=desired.version, power_interval_s=desired.power_interval_s,
                                     heartbeat_interval_s=desired.heartbeat_interval_s, applied_at=AT)
        return self.config

    def reported_config(self) -> ConfigReported:
        return self.config


class Rig:
    def __init__(self, tmp_path: Path, *, max_in_flight: int = 50, resend_timeout_s: float = 15,
                 heartbeat_interval_s: float = 30) -> None:
        self.outbox = Outbox(tmp_path / "outbox.db", max_batches=1000)
        self.client = FakeMqttClient()
        self.control = FakeControl()
        self.health = Health()
        self.batch_stored = asyncio.Event()
        self.wills: list[aiomqtt.Will] = []
        self.beats = 0
        self.heartbeat_interval_s = heartbeat_interval_s
        self.remaining: list[int] = []  # the outbox's batches after the play
        self.uplink = Uplink(self.outbox, heartbeat=self._beat, commands=self.control.execute, config=self.control,
                             batch_stored=self.batch_stored, health=self.health, gateway_id=GW,
                             broker=BrokerAddress.parse("mqtt://broker.invalid"), client_id="c-uplink",
                             max_in_flight=max_in_flight, resend_timeout_s=resend_timeout_s, connect=self._connect)

    @asynccontextmanager
    async def _connect(self, will: aiomqtt.Will) -> AsyncIterator[FakeMqttClient]:
        self.wills.append(will)
        yield self.client

    def _beat(self) -> Heartbeat:
        self.beats += 1
        return Heartbeat(gateway_id=GW, at=now_jst(), uptime_s=self.beats, firmware="test", module_family="sim",
                         read_errors_total=0, outbox_depth=self.outbox.depth(), power_interval_s=60,
                         heartbeat_interval_s=self.heartbeat_interval_s)

    def store(self, watts: int) -> int:
        reading = PowerReading(measured_at=AT + timedelta(seconds=watts), power_w=watts)
        seq = self.outbox.append(encode_readings([reading]), has_energy=False, now=0.0)
        self.batch_stored.set()
        return seq

    def ack(self, seq: int, *, stream_id: str | None = None, gateway_id: str = GW) -> None:
        ack = Ack(gateway_id=gateway_id, stream_id=stream_id or self.outbox.stream_id, acked_seq=seq, at=now_jst())
        self.client.deliver("ack", ack.to_json())

    def play(self, scenario: Callable[[], Awaitable[None]]) -> None:
        async def main() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(self.uplink.run(stop))
            try:
                await asyncio.wait_for(scenario(), 10)
            finally:
                stop.set()
                await asyncio.wait_for(task, 10)

        try:
            asyncio.run(main())
            self.remaining = [batch.seq for batch in self.outbox.pending(limit=1000)]
        finally:
            self.outbox.close()


def test_a_connection_announces_itself_and_goes_offline_on_shutdown(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    client = rig.client

    async def scenario() -> None:
        await eventually(lambda: client.on("heartbeat"), 5, "a heartbeat")
        assert rig.health.snapshot() == {f"mqtt:{GW}": True}

    rig.play(scenario)
    assert [topic for topic, _ in client.subscribed] == [topics.gateway(GW, leaf)
                                                         for leaf in ("ack", "config/desired", "cmd/req")]
    # QoS 0 on purpose: its sessions are clean (uplink.SUBSCRIPTION_QOS says why); all in one SUBSCRIBE.
    assert {qos for _, qos in client.subscribed} == {0}
    assert client.subscribe_packets == 1
    assert client.pending_calls_threshold == 60
    statuses = [(p.retain, GatewayStatus.model_validate_json(p.payload)) for p in client.published
                if p.topic == topics.status(GW)]
    assert [(retain, s.state, s.reason) for retain, s in statuses] == [(True, "online", None),
                                                                       (True, "offline", "shutdown")]
    will = rig.wills[0]
    assert will.topic == topics.status(GW) and will.retain and will.qos == 1
    assert isinstance(will.payload, bytes)
    last_will = GatewayStatus.model_validate_json(will.payload)
    assert (last_will.state, last_will.reason, last_will.at) == ("offline", "connection lost", None)
    assert [ConfigReported.model_validate_json(p) for p in client.on("config/reported")] == [rig.control.config]
    assert rig.health.snapshot() == {f"mqtt:{GW}": False}


def test_heartbeats_come_from_the_source_at_its_interval(tmp_path: Path) -> None:
    rig = Rig(tmp_path, heartbeat_interval_s=0.1)

    async def scenario() -> None:
        await eventually(lambda: len(rig.client.on("heartbeat")) >= 3, 5, "three heartbeats")

    rig.play(scenario)
    beats = [Heartbeat.model_validate_json(p) for p in rig.client.on("heartbeat")]
    assert [b.uptime_s for b in beats] == list(range(1, len(beats) + 1))
    assert {p.qos for p in rig.client.published if p.topic.endswith("/heartbeat")} == {0}


def test_batches_go_out_in_order_and_acks_delete_them(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    client = rig.client
    for watts in (1, 2, 3):
        rig.store(watts)

    async def scenario() -> None:
        await eventually(lambda: len(client.batches()) == 3, 5, "the stored batches")
        rig.ack(2, stream_id="f" * 32)  # another stream's ack (a wiped outbox): nothing is deleted
        rig.ack(2, gateway_id="gw-other")
        rig.ack(2)
        await eventually(lambda: rig.outbox.depth() == 1, 5, "batches 1 and 2 deleted")
        rig.store(4)  # published as soon as it is stored, not at the next poll
        await eventually(lambda: len(client.batches()) == 4, 0.5, "the new batch")

    rig.play(scenario)
    batches = client.batches()
    assert [b.seq for b in batches] == [1, 2, 3, 4]
    assert [b.readings[0].power_w for b in batches] == [1, 2, 3, 4]
    assert {(b.gateway_id, b.stream_id) for b in batches} == {(GW, rig.outbox.stream_id)}
    assert [b.outbox_floor_seq for b in batches] == [1, 1, 1, 3]
    assert {p.qos for p in client.published if p.topic.endswith("/readings")} == {1}
    assert rig.remaining == [3, 4]


def test_at_most_max_in_flight_batches_wait_for_an_ack(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_in_flight=2)
    for watts in range(5):
        rig.store(watts)

    async def scenario() -> None:
        await eventually(lambda: len(rig.client.batches()) == 2, 5, "two batches")
        await asyncio.sleep(0.2)
        assert len(rig.client.batches()) == 2
        rig.ack(1)
        await eventually(lambda: [b.seq for b in rig.client.batches()] == [1, 2, 3], 5, "one more")

    rig.play(scenario)


def test_unacked_batches_are_sent_again_from_the_oldest(tmp_path: Path) -> None:
    rig = Rig(tmp_path, resend_timeout_s=0.2)
    for watts in range(3):
        rig.store(watts)

    async def scenario() -> None:
        await eventually(lambda: len(rig.client.batches()) >= 6, 5, "a resend")

    rig.play(scenario)
    assert [b.seq for b in rig.client.batches()][:6] == [1, 2, 3, 1, 2, 3]


class CountingOutbox(Outbox):
    """An outbox that counts how often the pump looks for batches to send."""

    looks = 0

    def pending(self, *args: object, **kwargs: object) -> list[PendingBatch]:
        self.looks += 1
        return super().pending(*args, **kwargs)  # type: ignore[arg-type]


def test_an_idle_pump_looks_at_the_outbox_only_when_there_is_news(tmp_path: Path) -> None:
    """Nothing in flight, nothing new: the pump sleeps (a thousand gateways in one process, as in
    `pms up`, each looking every second were a thousand wake-ups a second); a new batch wakes it."""
    rig = Rig(tmp_path)
    rig.outbox.close()
    rig.uplink.outbox = rig.outbox = counting = CountingOutbox(tmp_path / "outbox.db", max_batches=1000)

    async def scenario() -> None:
        first = rig.store(1)
        await eventually(rig.client.batches, 5, "the first batch sent")
        rig.ack(first)
        await eventually(lambda: not counting.pending(limit=10), 5, "the first batch acked")
        looks = counting.looks
        await asyncio.sleep(2.5)
        assert counting.looks == looks, "the pump looked at the outbox with nothing new"
        rig.store(2)
        await eventually(lambda: [b.seq for b in rig.client.batches()] == [1, 2], 5, "the new batch sent")

    rig.play(scenario)


def test_resends_back_off_while_no_ack_comes_and_an_ack_ends_the_backoff(tmp_path: Path) -> None:
    """An ingest too slow to ack within the timeout must not get every batch again each timeout."""
    rig = Rig(tmp_path, resend_timeout_s=0.2)
    rig.store(1)

    def sends() -> int:
        return sum(batch.seq == 1 for batch in rig.client.batches())

    async def scenario() -> None:
        await eventually(sends, 5, "the first send")
        await asyncio.sleep(1.6)
        # Every 0.2 s that would be about 8 sends by now; backing off (0.2, 0.4, 0.8 s) it is 4.
        assert 3 <= sends() <= 5, sends()
        rig.ack(1)
        second = rig.store(2)
        await eventually(lambda: any(batch.seq == second for batch in rig.client.batches()), 5, "the next batch")
        sent = sum(batch.seq == second for batch in rig.client.batches())
        await asyncio.sleep(0.4)
        # The ack ended the backoff: the next batch unacked is resent after 0.2 s, not 1.6 s.
        assert sum(batch.seq == second for batch in rig.client.batches()) - sent >= 1

    rig.play(scenario)


def test_commands_are_handed_over_and_their_results_published(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    client = rig.client
    request = CommandRequest(correlation_id=str(uuid.uuid4()), command="read_property", args={"epc": "E7"},
                             deadline=now_jst() + timedelta(seconds=10))

    async def scenario() -> None:
        await eventually(lambda: client.subscribed, 5, "the subscriptions")
        client.deliver("cmd/req", b'{"v": 1, "command": "self_destruct"}')  # refused, and the uplink goes on
        client.deliver("cmd/req", request.to_json())
        await eventually(lambda: client.on("cmd/res"), 5, "the result")

    rig.play(scenario)
    assert rig.control.requests == [request]
    result = CommandResult.model_validate_json(client.on("cmd/res")[0])
    assert (result.correlation_id, result.ok, result.result) == (request.correlation_id, True, {"echo": {"epc": "E7"}})
    assert [p.qos for p in client.published if p.topic.endswith("/cmd/res")] == [1]


def test_a_newer_configuration_is_reported_back_retained(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    client = rig.client

    async def scenario() -> None:
        await eventually(lambda: len(client.on("config/reported")) == 1, 5, "the report on connecting")
        client.deliver("config/desired", ConfigDesired(version=2, power_interval_s=5, heartbeat_interval_s=7).to_json())
        await eventually(lambda: len(client.on("config/reported")) == 2, 5, "the report of version 2")
        client.deliver("config/desired", ConfigDesired(version=2, power_interval_s=9, heartbeat_interval_s=9).to_json())
        client.deliver("config/desired", b"not json")
        # Messages are handled in order: once this command is answered, the two above were seen to.
        client.deliver("cmd/req", CommandRequest(correlation_id=str(uuid.uuid4()), command="rejoin", args={},
                                                 deadline=now_jst() + timedelta(seconds=10)).to_json())
        await eventually(lambda: client.on("cmd/res"), 5, "the command after them")

    rig.play(scenario)
    reported = [ConfigReported.model_validate_json(p) for p in client.on("config/reported")]
    assert [(r.version, r.power_interval_s, r.heartbeat_interval_s) for r in reported] == [(0, 60, 30), (2, 5, 7)]
    assert {p.retain for p in client.published if p.topic.endswith("/config/reported")} == {True}


def test_the_payload_is_the_contracts_json(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.store(1234)

    async def scenario() -> None:
        await eventually(lambda: rig.client.on("readings"), 5, "a batch")

    rig.play(scenario)
    payload = rig.client.on("readings")[0]
    assert payload == ReadingsBatch.model_validate_json(payload).model_dump_json().encode()
    assert json.loads(payload)["readings"] == [{"kind": "power", "measured_at": (AT + timedelta(seconds=1234)).isoformat(),
                                                "power_w": 1234, "current_r_a": None, "current_t_a": None}]


def _with(payload: bytes, **added: object) -> bytes:
    """`payload` as a newer cloud would send it: with fields this version has never heard of."""
    return json.dumps({**json.loads(payload), **added}).encode()


def test_a_newer_clouds_fields_are_ignored_in_acks_configurations_and_commands(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    client = rig.client
    for watts in (1, 2, 3):
        rig.store(watts)
    request = CommandRequest(correlation_id=str(uuid.uuid4()), command="read_property", args={"epc": "E7"},
                             deadline=now_jst() + timedelta(seconds=10))

    async def scenario() -> None:
        await eventually(lambda: len(client.batches()) == 3, 5, "the stored batches")
        ack = Ack(gateway_id=GW, stream_id=rig.outbox.stream_id, acked_seq=2, at=now_jst())
        client.deliver("ack", _with(ack.to_json(), ingest_replica="ingest-2", detail={"stored_by": "b"}))
        await eventually(lambda: rig.outbox.depth() == 1, 5, "batches 1 and 2 deleted")
        desired = ConfigDesired(version=3, power_interval_s=5, heartbeat_interval_s=7)
        client.deliver("config/desired", _with(desired.to_json(), read_current=False))
        await eventually(lambda: len(client.on("config/reported")) == 2, 5, "the report of version 3")
        client.deliver("cmd/req", _with(request.to_json(), priority="high"))
        await eventually(lambda: client.on("cmd/res"), 5, "the result")

    rig.play(scenario)
    assert rig.remaining == [3]
    assert rig.control.config.version == 3
    assert rig.control.requests == [request]


def test_batches_acked_beyond_the_cumulative_point_are_deleted_and_not_sent_again(tmp_path: Path) -> None:
    # Two ingest replicas share the gateway's batches round robin: each acks what it stored.
    rig = Rig(tmp_path, resend_timeout_s=0.5)
    client = rig.client
    for watts in range(1, 7):
        rig.store(watts)

    async def scenario() -> None:
        await eventually(lambda: len(client.batches()) == 6, 5, "the stored batches")
        ack = Ack(gateway_id=GW, stream_id=rig.outbox.stream_id, acked_seq=1, at=now_jst(),
                  stored_ranges=[(3, 3), (5, 6)])
        client.deliver("ack", ack.to_json())
        await eventually(lambda: rig.outbox.depth() == 2, 5, "batches 1, 3, 5 and 6 deleted")
        await eventually(lambda: len(client.batches()) >= 8, 5, "the resend of what is left")
        await asyncio.sleep(0.2)

    rig.play(scenario)
    assert [b.seq for b in client.batches()][6:8] == [2, 4]  # only the batches nobody acked
    assert rig.remaining == [2, 4]


def test_a_heartbeat_due_before_its_interval_goes_out_at_once(tmp_path: Path) -> None:
    """What a heartbeat says of the meter changed (a scale refused, a clock skew): the next one goes
    now, not an interval later, so a short episode is never missed between two heartbeats."""
    rig = Rig(tmp_path, heartbeat_interval_s=30)

    async def scenario() -> None:
        await eventually(lambda: len(rig.client.on("heartbeat")) == 1, 5, "the first heartbeat")
        rig.uplink.heartbeat_due.set()
        await eventually(lambda: len(rig.client.on("heartbeat")) == 2, 2, "a heartbeat at once")
        await asyncio.sleep(0.2)
        assert len(rig.client.on("heartbeat")) == 2, "then the interval again"

    rig.play(scenario)
