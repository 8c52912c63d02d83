"""Faults given on a simulator's command line (`--fault KIND[@AFTER_S[:SECONDS]]`), and their timetable.

One definition for every simulator: the pty module's faults (`module.Fault`) and the LAN node's
(`udp_node.NodeFault`) are written and scheduled alike; only the kinds differ.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=enum.Enum)


@dataclass(frozen=True)
class ScheduledFault(Generic[K]):
    """A fault of kind `fault`, `after_s` seconds after the simulator starts, lasting `seconds`."""

    fault: K
    after_s: float
    seconds: float = 10.0

    @classmethod
    def parse(cls, text: str, kinds: Callable[[str], K]) -> ScheduledFault[K]:
        """KIND[@AFTER_S[:SECONDS]], e.g. event29@60 or no-response@30:20; `kinds` names the kind
        (the simulator's fault enum), raising ValueError for one it does not have."""
        kind, _, when = text.partition("@")
        after, _, seconds = when.partition(":")
        return cls(kinds(kind), float(after or 0), float(seconds or 10))


class FaultTimetable(Generic[K]):
    """The faults still to come, counted from `started` (a monotonic time)."""

    def __init__(self, faults: Iterable[ScheduledFault[K]], started: float) -> None:
        self.started = started
        self._todo = sorted(faults, key=lambda f: f.after_s)

    def due(self, now: float) -> list[ScheduledFault[K]]:
        """The faults due by `now`, in order, taken off the timetable."""
        due: list[ScheduledFault[K]] = []
        while self._todo and now - self.started >= self._todo[0].after_s:
            due.append(self._todo.pop(0))
        return due

    def next_at(self) -> float | None:
        """When the next fault is due (monotonic), or None when none is left."""
        return self.started + self._todo[0].after_s if self._todo else None
