"""Ack bookkeeping, per gateway stream: which sequence numbers are durably stored."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """`seqs` as sorted, merged, inclusive (from, to) ranges: the selective part of an ack."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


@dataclass
class StreamProgress:
    acked: int = 0
    stored_above: set[int] = field(default_factory=set)

    def stored(self, seq: int, outbox_floor_seq: int) -> int:
        """Record a durably stored batch; returns the new cumulative ack.

        Everything below the gateway's outbox floor was acked before (perhaps by an ingest that has
        since restarted), so the floor lets the ack advance without remembered state.
        """
        self.acked = max(self.acked, outbox_floor_seq - 1)
        if seq > self.acked:
            self.stored_above.add(seq)
        while self.acked + 1 in self.stored_above:
            self.acked += 1
            self.stored_above.discard(self.acked)
        self.stored_above = {s for s in self.stored_above if s > self.acked}
        return self.acked
