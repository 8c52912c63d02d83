from __future__ import annotations

from pms_ingest.progress import StreamProgress, seq_ranges


def test_in_order() -> None:
    progress = StreamProgress()
    assert [progress.stored(seq, 1) for seq in (1, 2, 3)] == [1, 2, 3]
    assert progress.stored_above == set()


def test_out_of_order() -> None:
    progress = StreamProgress()
    assert progress.stored(2, 1) == 0
    assert progress.stored(3, 1) == 0
    assert progress.stored_above == {2, 3}
    assert progress.stored(1, 1) == 3
    assert progress.stored_above == set()


def test_gap_then_fill() -> None:
    progress = StreamProgress()
    assert progress.stored(1, 1) == 1
    assert progress.stored(2, 1) == 2
    assert progress.stored(4, 1) == 2  # 3 is missing: the ack must not pass it
    assert progress.stored(5, 1) == 2
    assert progress.stored(3, 1) == 5


def test_duplicates_do_not_move_the_ack() -> None:
    progress = StreamProgress()
    progress.stored(1, 1)
    progress.stored(2, 1)
    assert progress.stored(1, 1) == 2
    assert progress.stored(2, 1) == 2
    assert progress.stored_above == set()


def test_floor_lets_a_restarted_ingest_ack() -> None:
    # A fresh ingest (no memory) gets seq 41 from a gateway whose outbox floor is 41.
    progress = StreamProgress()
    assert progress.stored(41, 41) == 41
    assert progress.stored(43, 41) == 41
    assert progress.stored(42, 41) == 43


def test_floor_above_the_stored_seqs_drops_them() -> None:
    progress = StreamProgress()
    progress.stored(5, 1)
    progress.stored(7, 1)
    assert progress.stored(9, 8) == 7
    assert progress.stored_above == {9}
    assert progress.stored(8, 8) == 9


def test_floor_never_moves_the_ack_back() -> None:
    progress = StreamProgress()
    for seq in range(1, 11):
        progress.stored(seq, 1)
    assert progress.stored(3, 2) == 10
    assert progress.acked == 10


def test_seq_ranges_are_sorted_inclusive_and_merged() -> None:
    assert seq_ranges([9, 3, 5, 4, 9, 7]) == [(3, 5), (7, 7), (9, 9)]
    assert seq_ranges([]) == []
