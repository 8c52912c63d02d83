"""What the store-reading conditions share: a rule's parameters with their defaults, and JSON-safe
times for an event's parameters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pms_alerts.conditions import PlantContext
from pms_common import timeutil
from pms_registry.records import AlertRule, Plant


def param(rule: AlertRule, name: str, default: float) -> float:
    """A numeric parameter of the rule; its default when absent or not a number (the engine validates
    rules as they are saved; an evaluation must not stop on an old, odd one)."""
    value = rule.params.get(name, default)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def stamp(moment: datetime) -> str:
    """A moment as an event parameter: ISO 8601 in Japan time (event params are stored as JSON)."""
    return moment.astimezone(timeutil.JST).isoformat()


def enabled(plants: Sequence[PlantContext], rules: Mapping[str, AlertRule]) -> list[PlantContext]:
    """The plants this condition observes: those with an effective rule of its kind (the engine passes
    only enabled ones; a disabled one slipping through is skipped)."""
    return [p for p in plants if p.service_code in rules and rules[p.service_code].enabled]


def reads_since(plant: Plant) -> datetime | None:
    """When the plant's earliest binding starts reading (None: a gateway's whole history)."""
    if not plant.bindings:
        return None
    starts = [b.reads_from for b in plant.bindings]
    if any(s is None for s in starts):
        return None
    return min(s for s in starts if s is not None)

