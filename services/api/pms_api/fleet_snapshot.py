"""The whole fleet's figures, kept for a few seconds: what a sort or filter by a figure reads.

Sorting 10,000 plants by sold power needs every plant's sold power, which is a few batched store
queries over the whole fleet (hundreds of milliseconds at that size): too much for every request of
every operator's 20-second refresh. One snapshot per API process is shared by all requests instead.
It is rebuilt on demand when older than `max_age_s`, by one request at a time (under a lock); while
one request rebuilds it, the others answer from the previous snapshot and say how old it is. A page's
own rows are still computed fresh (pms_api.plant_list): the snapshot decides the order, not the figures
shown.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Histogram

from pms_api.models import PlantStatus

SNAPSHOT_BUILDS = Histogram("pms_api_fleet_snapshot_build_seconds",
                            "Time to rebuild the fleet snapshot the cross-plant list sorts and filters by")


@dataclass(frozen=True)
class MeasuredFigures:
    """A plant's figures from the store: sold power now (None = not measured), today's kWh, status."""

    current_sold_w: int | None
    measured_at: datetime | None
    today_sold_kwh: float
    status: PlantStatus


@dataclass(frozen=True)
class FleetFigures:
    """Every active plant's figures at `taken_at` (monotonic seconds), and the PR ratios kept then."""

    taken_at: float
    built_at: datetime
    measured: dict[str, MeasuredFigures] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)

    def age_s(self) -> float:
        return max(0.0, time.monotonic() - self.taken_at)


class FleetSnapshot:
    def __init__(self, build: Callable[[], FleetFigures], *, max_age_s: float) -> None:
        self._build = build
        self.max_age_s = max_age_s
        self._current: FleetFigures | None = None
        self._rebuilding = threading.Lock()

    def current(self) -> FleetFigures:
        """A snapshot at most `max_age_s` old, or (while another request rebuilds) the previous one."""
        snapshot = self._current
        if snapshot is not None and snapshot.age_s() <= self.max_age_s:
            return snapshot
        if snapshot is not None and not self._rebuilding.acquire(blocking=False):
            return snapshot  # someone is rebuilding: don't queue behind them
        if snapshot is None:
            self._rebuilding.acquire()  # the first one: everyone waits for it
        try:
            latest = self._current
            if latest is not None and latest.age_s() <= self.max_age_s:
                return latest  # built while this request waited for the lock
            started = time.perf_counter()
            self._current = self._build()
            SNAPSHOT_BUILDS.observe(time.perf_counter() - started)
            return self._current
        finally:
            self._rebuilding.release()
