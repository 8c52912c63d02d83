"""The whole fleet's figures, kept for a few seconds: what a sort or filter by a figure reads.

Sorting 10,000 plants by sold power needs every plant's sold power, which is a few batched store
queries over the whole fleet (hundreds of milliseconds at that size): too much for every request of
every operator's 20-second refresh. One snapshot per API process is shared by all requests instead.
The first request builds it (the others wait for that one); after that, a request that finds it older
than `max_age_s` starts one rebuild in a background thread (a lock keeps it to one at a time) and
answers from the previous snapshot, saying how old it is: no request waits for a rebuild. A page's
own rows are still computed fresh (pms_api.plant_list): the snapshot decides the order and the
filter, not the figures shown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client import Histogram

from pms_api.models import PlantStatus

log = logging.getLogger(__name__)
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
    customers: dict[str, str] = field(default_factory=dict)  # whose each plant is: scope without the registry
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
        """A snapshot at most `max_age_s` old, or the previous one while a background thread rebuilds it
        (so that no request but the very first waits for a rebuild)."""
        snapshot = self._current
        if snapshot is None:
            with self._rebuilding:  # the first one: every request waits for it
                if self._current is None:
                    self._rebuild()
            assert self._current is not None
            return self._current
        if snapshot.age_s() > self.max_age_s and self._rebuilding.acquire(blocking=False):
            threading.Thread(target=self._rebuild_in_background, name="fleet-snapshot", daemon=True).start()
        return snapshot

    def _rebuild_in_background(self) -> None:
        try:
            self._rebuild()
        except Exception:  # the next request tries again; the old snapshot serves meanwhile
            log.exception("api: the fleet snapshot could not be rebuilt")
        finally:
            self._rebuilding.release()

    def _rebuild(self) -> None:
        started = time.perf_counter()
        self._current = self._build()
        SNAPSHOT_BUILDS.observe(time.perf_counter() - started)
