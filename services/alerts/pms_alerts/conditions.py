"""What a condition sees and says: the interface between the engine and the rule kinds' evaluators.

A condition observes, for each plant whose effective rule of its kind is enabled, whether its raise
condition holds now (True), its clear condition holds (False), or there is no data to tell (None).
It keeps no timers: the engine (`pms_alerts.engine`) turns observations into episodes with the
rule's raise_for/clear_for durations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pms_common.messages import Heartbeat, UpdateReport
from pms_registry.records import AlertRule, Plant


@dataclass(frozen=True)
class PlantContext:
    service_code: str
    customer_id: str
    gateway_ids: tuple[str, ...]
    latitude: float | None
    longitude: float | None
    capacity_kw: float | None
    tags: frozenset[str]
    plant: Plant  # the registry record (bindings, billing start, ...)


@dataclass(frozen=True)
class Observation:
    holds: bool | None  # the raise condition holds now (True), its clear condition holds (False),
    # or no data to tell (None: timers stay as they are)
    params: Mapping[str, Any] = field(default_factory=dict)  # facts for the event text
    gateway_id: str | None = None


@dataclass
class FleetFacts:
    """What the service learnt from MQTT."""

    online: dict[str, bool]  # gateway id -> online now (liveness tracker)
    heartbeats: dict[str, Heartbeat]  # last heartbeat per gateway
    update_reports: dict[str, UpdateReport]  # last update/state per gateway
    # Why each offline gateway is offline, as the liveness tracker said (beyond the COMMON.md contract;
    # defaulted, so the conditions' tests build FleetFacts with the three fields above).
    offline_reasons: dict[str, str] = field(default_factory=dict)


class Condition(Protocol):
    kind: str

    def observe_all(self, plants: Sequence[PlantContext], rules: Mapping[str, AlertRule],
                    now: datetime, facts: FleetFacts) -> dict[str, Observation]:
        """Observations keyed by service code, for the plants whose effective rule of this kind
        is enabled (`rules` maps service code -> that rule). Batch store reads: one query per
        tick for all plants where the store allows it. Plants absent from the result: None."""
        ...
