"""When a channel's queued happenings go out, all together (sans-IO; Alertmanager's semantics).

Per channel: the first happening queued after a quiet spell waits `group_wait_s`, so that the rest
of a storm (a broker outage takes hundreds of plants offline within seconds) joins it; then one
delivery carries everything queued. Happenings queued within `group_interval_s` after a delivery
wait for that interval's end and go out together too. So a channel gets at most one delivery per
group interval however many plants change, and a lone happening after a quiet spell is told
after `group_wait_s`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class GroupTiming:
    group_wait_s: float
    group_interval_s: float


@dataclass(frozen=True)
class Queued:
    """One happening waiting in a channel's queue since `queued_at`."""

    queue_id: int
    happening_id: int
    queued_at: datetime


def flush_at(*, first_queued_at: datetime, last_flush_at: datetime | None, timing: GroupTiming) -> datetime:
    """When the queue whose oldest entry was queued at `first_queued_at` goes out."""
    due = first_queued_at + timedelta(seconds=timing.group_wait_s)
    if last_flush_at is not None:
        due = max(due, last_flush_at + timedelta(seconds=timing.group_interval_s))
    return due


def due_groups(queues: Mapping[int, Sequence[Queued]], *, last_flush: Mapping[int, datetime],
               timings: Mapping[int, GroupTiming], now: datetime) -> dict[int, list[Queued]]:
    """The channels whose queue is due at `now`, each with everything it holds (oldest first)."""
    due: dict[int, list[Queued]] = {}
    for channel_id, queued in queues.items():
        if not queued or channel_id not in timings:
            continue
        first = min(entry.queued_at for entry in queued)
        if flush_at(first_queued_at=first, last_flush_at=last_flush.get(channel_id),
                    timing=timings[channel_id]) <= now:
            due[channel_id] = sorted(queued, key=lambda entry: (entry.queued_at, entry.happening_id))
    return due


def next_flush(queues: Mapping[int, Sequence[Queued]], *, last_flush: Mapping[int, datetime],
               timings: Mapping[int, GroupTiming]) -> datetime | None:
    """The earliest moment a queue falls due (None: nothing queued): how long a dispatcher may sleep."""
    moments = [
        flush_at(first_queued_at=min(entry.queued_at for entry in queued),
                 last_flush_at=last_flush.get(channel_id), timing=timings[channel_id])
        for channel_id, queued in queues.items() if queued and channel_id in timings
    ]
    return min(moments, default=None)
