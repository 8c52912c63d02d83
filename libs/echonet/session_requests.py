"""The B-route session's requests to the meter: TIDs, the send queue and the requests awaiting an answer.

`BRouteSession` owns one `MeterRequests` and hands it to the dialogue, whose serve loop takes the
frames to send from it one at a time (the module sends one SKSENDTO at a time, and not at all while
the ARIB transmit-time limit holds). A frame queued without a TID is an acknowledgement (INFC_Res)
that expects no answer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class PendingRequest:
    deadline: float
    sent: bool = False  # handed to the module: a timeout now counts as a failure of the link


class MeterRequests:
    def __init__(self) -> None:
        self._send_queue: deque[tuple[int | None, bytes]] = deque()
        self._pending: dict[int, PendingRequest] = {}
        self._next_tid = 1

    def allocate_tid(self) -> int:
        """The next TID (1-65535, wrapping) that no pending request uses."""
        while True:
            tid = self._next_tid
            self._next_tid = tid % 0xFFFF + 1
            if tid not in self._pending:
                return tid

    def add(self, tid: int, frame: bytes, deadline: float) -> None:
        """Queue a request frame; it awaits an answer until `deadline`."""
        self._pending[tid] = PendingRequest(deadline)
        self._send_queue.append((tid, frame))

    def add_unanswered(self, frame: bytes) -> None:
        """Queue a frame that expects no answer (an acknowledgement)."""
        self._send_queue.append((None, frame))

    @property
    def has_queued(self) -> bool:
        return bool(self._send_queue)

    def next_to_send(self) -> tuple[int | None, bytes]:
        """Take the oldest queued frame and mark its request as sent."""
        tid, frame = self._send_queue.popleft()
        pending = self._pending.get(tid) if tid is not None else None
        if pending is not None:
            pending.sent = True
        return tid, frame

    def settle(self, tid: int) -> bool:
        """Forget a request that was answered or failed; False if it was not pending."""
        return self._pending.pop(tid, None) is not None

    def expire(self, now: float) -> list[tuple[int, bool]]:
        """Drop the requests whose deadline passed (and their frames still queued): (TID, was sent) each."""
        expired: list[tuple[int, bool]] = []
        for tid, pending in list(self._pending.items()):
            if now >= pending.deadline:
                del self._pending[tid]
                self._send_queue = deque(item for item in self._send_queue if item[0] != tid)
                expired.append((tid, pending.sent))
        return expired

    def drop_all(self) -> list[int]:
        """Forget every pending request and queued frame; the TIDs that were pending."""
        tids = list(self._pending)
        self._pending.clear()
        self._send_queue.clear()
        return tids

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self._pending.values()), default=None)
