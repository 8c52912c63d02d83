from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pms_collector.outbox import Outbox, PendingBatch

POWER = '[{"kind":"power","n":%d}]'
ENERGY = '[{"kind":"energy","n":%d}]'


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox" / "outbox.db", max_batches=1000)
    yield box
    box.close()


def test_creates_its_directory(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "a" / "b" / "outbox.db", max_batches=10)
    assert (tmp_path / "a" / "b" / "outbox.db").exists()
    box.close()


def test_stream_id_is_hex_and_stable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path, max_batches=10)
    stream_id = box.stream_id
    assert len(stream_id) == 32
    int(stream_id, 16)
    box.append(POWER % 1, has_energy=False, now=1.0)
    box.close()
    again = Outbox(path, max_batches=10)
    assert again.stream_id == stream_id
    assert [b.seq for b in again.pending(limit=10)] == [1]
    again.close()


def test_new_file_new_stream(tmp_path: Path) -> None:
    first = Outbox(tmp_path / "one.db", max_batches=10)
    second = Outbox(tmp_path / "two.db", max_batches=10)
    assert first.stream_id != second.stream_id
    first.close()
    (tmp_path / "one.db").unlink()
    wiped = Outbox(tmp_path / "one.db", max_batches=10)
    assert wiped.stream_id != first.stream_id
    assert wiped.floor_seq() == 1
    wiped.close()
    second.close()


def test_seq_is_contiguous(outbox: Outbox) -> None:
    seqs = [outbox.append(POWER % i, has_energy=False, now=float(i)) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert outbox.depth() == 5
    assert outbox.pending(limit=10) == [PendingBatch(i + 1, POWER % i) for i in range(5)]


def test_pending_limit_and_after(outbox: Outbox) -> None:
    for i in range(5):
        outbox.append(POWER % i, has_energy=False, now=0.0)
    assert [b.seq for b in outbox.pending(limit=2)] == [1, 2]
    assert [b.seq for b in outbox.pending(limit=10, after_seq=3)] == [4, 5]
    assert outbox.pending(limit=10, after_seq=5) == []


def test_ack_deletes_up_to_seq(outbox: Outbox) -> None:
    for i in range(5):
        outbox.append(POWER % i, has_energy=False, now=0.0)
    assert outbox.ack(3) == 3
    assert [b.seq for b in outbox.pending(limit=10)] == [4, 5]
    assert outbox.ack(3) == 0  # a repeated ack deletes nothing
    assert outbox.ack(0) == 0
    assert outbox.depth() == 2


def test_acked_ranges_are_deleted_and_the_floor_stays_below_the_gap(outbox: Outbox) -> None:
    for i in range(8):
        outbox.append(POWER % i, has_energy=False, now=0.0)
    assert outbox.ack(1, stored_ranges=[(3, 4), (6, 6), (20, 30)]) == 4
    assert [b.seq for b in outbox.pending(limit=10)] == [2, 5, 7, 8]
    assert outbox.floor_seq() == 2  # 2 is still held: everything below the floor was acked
    assert outbox.ack(2) == 1
    assert outbox.floor_seq() == 5


def test_floor_seq(outbox: Outbox) -> None:
    assert outbox.floor_seq() == 1
    for i in range(4):
        outbox.append(POWER % i, has_energy=False, now=0.0)
    assert outbox.floor_seq() == 1
    outbox.ack(2)
    assert outbox.floor_seq() == 3
    outbox.ack(4)
    assert outbox.depth() == 0
    # Empty: the next seq to be issued, which the next append confirms.
    assert outbox.floor_seq() == 5
    assert outbox.append(POWER % 5, has_energy=False, now=0.0) == 5


def test_seq_is_not_reused_after_ack_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path, max_batches=10)
    box.append(POWER % 1, has_energy=False, now=0.0)
    box.append(POWER % 2, has_energy=False, now=0.0)
    box.ack(2)
    box.close()
    again = Outbox(path, max_batches=10)
    assert again.floor_seq() == 3
    assert again.append(POWER % 3, has_energy=False, now=0.0) == 3
    again.close()


def test_cap_thins_power_only_batches_first_and_keeps_their_seq(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_batches=3)
    box.append(ENERGY % 1, has_energy=True, now=0.0)
    box.append(POWER % 2, has_energy=False, now=0.0)
    box.append(POWER % 3, has_energy=False, now=0.0)
    assert box.thinned_power_batches == 0
    box.append(ENERGY % 4, has_energy=True, now=0.0)  # one over the cap
    pending = box.pending(limit=10)
    assert [b.seq for b in pending] == [1, 2, 3, 4]
    assert [json.loads(b.readings_json) for b in pending] == [
        [{"kind": "energy", "n": 1}], [], [{"kind": "power", "n": 3}], [{"kind": "energy", "n": 4}]]
    assert box.thinned_power_batches == 1
    box.close()


def test_cap_drops_energy_only_when_no_power_is_left_and_counts_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_batches=2)
    box.append(POWER % 1, has_energy=False, now=0.0)
    for i in range(2, 6):
        box.append(ENERGY % i, has_energy=True, now=0.0)
    pending = box.pending(limit=10)
    assert [b.seq for b in pending] == [1, 2, 3, 4, 5]
    # The power batch went first; then the oldest slots, as few as the cap needs.
    assert [b.readings_json == "[]" for b in pending] == [True, True, True, False, False]
    assert box.thinned_power_batches == 1
    assert box.dropped_energy_batches == 2
    box.close()


def test_meta_is_stored_with_the_batch_and_survives_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_batches=10)
    box.append(ENERGY % 1, has_energy=True, now=0.0, meta={"latest_slot_end": "2026-06-01T12:00:00+09:00"})
    box.set_meta("config_version", "3")
    box.close()
    again = Outbox(tmp_path / "o.db", max_batches=10)
    assert again.meta("latest_slot_end") == "2026-06-01T12:00:00+09:00"
    assert again.meta("config_version") == "3"
    assert again.meta("missing") is None
    again.close()


def test_empty_batches_can_be_acked_past(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_batches=1)
    box.append(POWER % 1, has_energy=False, now=0.0)
    box.append(ENERGY % 2, has_energy=True, now=0.0)
    assert box.pending(limit=10)[0].readings_json == "[]"
    assert box.ack(2) == 2
    assert box.depth() == 0
    box.close()


def test_outbox_cap_keeps_the_newest_power_batches(tmp_path: Path) -> None:
    """services/collector/pms_collector/outbox.py `_enforce_cap` (lines 59-73, `excess` on line 68) over-thins.

    `excess = depth - max_batches` counts the rows already emptied, so every append past the cap
    empties more batches than it added: with cap 3 and 8 power batches, all 8 are emptied, even the
    one just appended (before it is ever published). Past the cap, only the oldest power readings
    should go: the newest `max_batches` batches must keep theirs.
    """
    box = Outbox(tmp_path / "o.db", max_batches=3)
    for n in range(1, 9):
        box.append(json.dumps([{"kind": "power", "n": n}]), has_energy=False, now=0.0)
    pending = box.pending(limit=100)
    assert [b.seq for b in pending] == list(range(1, 9))
    with_readings = [b.seq for b in pending if b.readings_json != "[]"]
    box.close()
    assert with_readings == [6, 7, 8]


def test_the_slot_ledger_outlives_acks_and_restarts_and_live_values_stand(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from pms_collector.backfill import StoredSlot
    from pms_common.messages import EnergyReading
    from pms_common.timeutil import JST

    slot = datetime(2026, 6, 1, 9, 0, tzinfo=JST)

    def reading(forward: float, *, backfilled: bool, at: datetime = slot) -> EnergyReading:
        return EnergyReading(slot_end=at, forward_kwh=forward, reverse_kwh=0.0, register_wrap_kwh=1e5,
                             backfilled=backfilled)

    box = Outbox(tmp_path / "outbox.db", max_batches=1000)
    seq = box.append(ENERGY % 1, has_energy=True, now=0.0, slots=[reading(4.3, backfilled=False)])
    box.append(ENERGY % 2, has_energy=True, now=0.0, slots=[reading(4.4, backfilled=True)])
    box.ack(seq + 1)
    box.close()
    again = Outbox(tmp_path / "outbox.db", max_batches=1000)
    assert again.depth() == 0
    assert again.stored_slots(slot - timedelta(minutes=30), slot) == {slot: StoredSlot(4.3, 0.0, live=True)}
    # Slots older than the meter's 99 days of history are forgotten.
    later = slot + timedelta(days=101)
    again.append(ENERGY % 3, has_energy=True, now=0.0, slots=[reading(9.0, backfilled=False, at=later)])
    assert again.stored_slots(slot - timedelta(days=1), later) == {later: StoredSlot(9.0, 0.0, live=True)}
    again.close()
