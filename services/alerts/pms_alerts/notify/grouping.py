"""When a channel's queued happenings go out, all together (sans-IO; Alertmanager's semantics).

Per channel: the first happening queued after a quiet spell waits `group_wait_s`, so that the rest
of a storm (a broker outage takes hundreds of plants offline within seconds) joins it; then one
delivery carries everything queued. Happenings queued within `group_interval_s` after a delivery
wait for that interval's end and go out together too. So a channel gets at most one delivery per
group interval however many plants change, and a lone happening after a quiet spell is told
after `group_wait_s`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class GroupTiming:
    group_wait_s: float
    group_interval_s: float


def flush_at(*, first_queued_at: datetime, last_flush_at: datetime | None, timing: GroupTiming) -> datetime:
    """When the queue whose oldest entry was queued at `first_queued_at` goes out."""
    due = first_queued_at + timedelta(seconds=timing.group_wait_s)
    if last_flush_at is not None:
        due = max(due, last_flush_at + timedelta(seconds=timing.group_interval_s))
    return due


def due_channels(first_queued: Mapping[int, datetime], *, last_flush: Mapping[int, datetime],
                 timings: Mapping[int, GroupTiming], now: datetime) -> list[int]:
    """The channels whose queue (oldest entry queued at `first_queued[channel]`) goes out at `now`:
    everything they hold then goes into one delivery."""
    return sorted(channel_id for channel_id, first in first_queued.items() if channel_id in timings
                  and flush_at(first_queued_at=first, last_flush_at=last_flush.get(channel_id),
                               timing=timings[channel_id]) <= now)


def next_flush(first_queued: Mapping[int, datetime], *, last_flush: Mapping[int, datetime],
               timings: Mapping[int, GroupTiming]) -> datetime | None:
    """The earliest moment a queue falls due (None: nothing queued): how long a dispatcher may sleep."""
    moments = [flush_at(first_queued_at=first, last_flush_at=last_flush.get(channel_id), timing=timings[channel_id])
               for channel_id, first in first_queued.items() if channel_id in timings]
    return min(moments, default=None)
