"""The writer side of ingest: one durable write per flush, isolation of refused batches, acks after."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pms_common import timeutil
from pms_common.health import Health
from pms_common.messages import PowerReading, ReadingsBatch
from pms_ingest.service import Ingest, Received, write_isolating
from pms_ingest.settings import IngestSettings
from pms_store import GatewayReadings, StoreError, StoreRefused, WriteOutcome

T0 = datetime(2026, 6, 1, 12, tzinfo=timeutil.JST)


def received(gw: str, seq: int, readings: int = 1, *, floor: int = 1, stream: str = "0123456789abcdef") -> Received:
    batch = ReadingsBatch(
        gateway_id=gw, stream_id=stream, seq=seq, outbox_floor_seq=floor, sent_at=T0,
        readings=[PowerReading(measured_at=T0.replace(second=i % 60, minute=i // 60), power_w=-i) for i in range(readings)],
    )
    return Received(batch, f"pms/v1/gw/{gw}/readings", batch.to_json())


class FakeStore:
    """Refuses any write holding a batch of a gateway in `refuse`; fails all when `down`."""

    def __init__(self, refuse: set[str] | None = None, *, down: bool = False) -> None:
        self.refuse = refuse or set()
        self.down = down
        self.calls: list[list[str]] = []
        self.stored: list[str] = []

    def write_many(self, batches: Sequence[GatewayReadings]) -> list[WriteOutcome]:
        self.calls.append([b.gateway_id for b in batches])
        if self.down:
            raise StoreError("cannot reach the store")
        if any(b.gateway_id in self.refuse for b in batches):
            raise StoreRefused("field type conflict")
        self.stored.extend(b.gateway_id for b in batches)
        return [WriteOutcome(power_written=len(b.power)) for b in batches]


def test_a_flush_is_one_write() -> None:
    store = FakeStore()
    items = [received(f"gw-{i}", 1) for i in range(50)]
    result = write_isolating(store, items)  # type: ignore[arg-type]
    assert len(store.calls) == 1
    assert [item for item, _ in result.stored] == items
    assert (result.refused, result.failed, result.error) == ([], [], None)


def test_a_refused_batch_is_isolated_and_the_others_are_stored() -> None:
    store = FakeStore(refuse={"gw-bad"})
    items = [received(f"gw-{i}", 1) for i in range(63)]
    items.insert(17, received("gw-bad", 1))
    result = write_isolating(store, items)  # type: ignore[arg-type]
    assert [item.batch.gateway_id for item, _ in result.refused] == ["gw-bad"]
    assert sorted(store.stored) == sorted(f"gw-{i}" for i in range(63))
    assert result.failed == []
    assert len(store.calls) <= 2 * 7 + 1  # halving: about 2 log2(n) writes, not n


def test_an_unreachable_store_fails_the_flush_without_halving() -> None:
    store = FakeStore(down=True)
    items = [received(f"gw-{i}", 1) for i in range(10)]
    result = write_isolating(store, items)  # type: ignore[arg-type]
    assert len(store.calls) == 1
    assert result.failed == items
    assert isinstance(result.error, StoreError)


def ingest(**settings: Any) -> Ingest:
    return Ingest(IngestSettings(mqtt_url="mqtt://127.0.0.1:1", **settings), FakeStore(), Health())  # type: ignore[arg-type]


def test_take_drains_up_to_the_reading_limit_and_at_least_one_batch() -> None:
    service = ingest(flush_max_readings=10, max_pending_readings=20)
    for seq in range(1, 5):
        service._enqueue(received("gw-1", seq, readings=4))
    service._enqueue(received("gw-1", 5, readings=30))
    taken, _ = service._take()
    assert [item.batch.seq for item in taken] == [1, 2]
    assert [item.batch.seq for item in service._take()[0]] == [3, 4]
    assert [item.batch.seq for item in service._take()[0]] == [5]  # larger than the limit, alone
    assert service._take()[0] == []
    assert service._pending_readings == 0
    assert not service._work.is_set()
    assert service._room.is_set()


class FakeClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.published.append((topic, json.loads(payload)))


def test_acks_go_out_once_per_stream_after_the_write_and_cover_only_what_is_stored() -> None:
    service = ingest()
    service.store = FakeStore(refuse={"gw-bad"})  # type: ignore[assignment]
    items = [received("gw-1", seq) for seq in (1, 2, 4)] + [received("gw-2", 7, floor=7), received("gw-bad", 1)]
    client = FakeClient()

    async def flush() -> None:
        result = write_isolating(service.store, items)
        await service._after_write(client, result)  # type: ignore[arg-type]
        await asyncio.gather(*service._ack_tasks)

    asyncio.run(flush())
    acks = {payload["gateway_id"]: payload["acked_seq"] for topic, payload in client.published if topic.endswith("/ack")}
    assert acks == {"gw-1": 2, "gw-2": 7}  # seq 3 of gw-1 is missing: the cumulative ack stops at 2
    letters = [payload for topic, payload in client.published if topic == "pms/v1/deadletter/ingest"]
    assert len(letters) == 1
    assert letters[0]["topic"] == "pms/v1/gw/gw-bad/readings"
    assert "refused" in letters[0]["reason"]
    assert [t for t, _ in client.published].count("pms/v1/gw/gw-1/ack") == 1


def test_a_shared_subscription_and_a_stable_distinct_client_id() -> None:
    alone, replica = ingest(), ingest(share_group="ingest")
    assert alone._subscription("pms/v1/gw/+/readings") == "pms/v1/gw/+/readings"
    assert replica._subscription("pms/v1/gw/+/readings") == "$share/ingest/pms/v1/gw/+/readings"
    assert alone.settings.client_id() == "pms-ingest"
    assert replica.settings.client_id().startswith("pms-ingest-")
    assert ingest(share_group="ingest", mqtt_client_id="ingest-0").settings.client_id() == "ingest-0"


def _flush(service: Ingest, items: list[Received]) -> list[dict[str, Any]]:
    client = FakeClient()

    async def flush() -> None:
        await service._after_write(client, write_isolating(service.store, items))  # type: ignore[arg-type]
        await asyncio.gather(*service._ack_tasks)

    asyncio.run(flush())
    return [payload for topic, payload in client.published if topic.endswith("/ack")]


def test_acks_name_the_ranges_stored_beyond_the_cumulative_point() -> None:
    # One replica of a round-robin share group: it sees 1, 3, 4, 5, 7 of a gateway, the other the rest.
    service = ingest(share_group="ingest")
    [ack] = _flush(service, [received("gw-1", seq) for seq in (1, 3, 4, 5, 7)])
    assert (ack["acked_seq"], ack["stored_ranges"]) == (1, [[3, 5], [7, 7]])
    # A later flush names what it stored itself; the cumulative point moves on as the floor does.
    [ack] = _flush(service, [received("gw-1", 9, floor=8), received("gw-1", 8, floor=8)])
    assert (ack["acked_seq"], ack.get("stored_ranges", [])) == (9, [])


def test_an_ack_with_nothing_beyond_the_cumulative_point_has_no_ranges_field() -> None:
    # Exactly the payload of before, which gateways that refuse unknown fields still read.
    [ack] = _flush(ingest(), [received("gw-1", seq) for seq in (1, 2)])
    assert set(ack) == {"v", "gateway_id", "stream_id", "acked_seq", "at"}


def test_selective_acks_can_be_turned_off_for_a_fleet_of_old_gateways() -> None:
    [ack] = _flush(ingest(selective_acks=False), [received("gw-1", seq) for seq in (1, 3)])
    assert set(ack) == {"v", "gateway_id", "stream_id", "acked_seq", "at"} and ack["acked_seq"] == 1
