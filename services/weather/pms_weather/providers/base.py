"""The interface every weather provider offers the service, and the plant location it is asked for.

A provider turns locations into 30-minute slot series (`Weather`, `observed_at` = slot end, JST) for
a window of time. It never raises for a provider outage: it answers with stand-in values marked
`stale=True` and says so (`Fetched.problem`), so the service keeps publishing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pms_common.messages import Weather


@dataclass(frozen=True)
class Location:
    service_code: str
    latitude: float
    longitude: float


@dataclass
class Fetched:
    """Slot series per service code, and why some are stale (None while the provider answered)."""

    series: dict[str, list[Weather]] = field(default_factory=dict)
    problem: str | None = None


class WeatherProvider(Protocol):
    name: str

    def fetch(self, locations: Sequence[Location], start: datetime, end: datetime) -> Fetched:
        """Slots ending in (start, end] for each location, oldest first."""
        ...

    def close(self) -> None:
        """Let go of connections (a provider without any does nothing)."""
        ...
