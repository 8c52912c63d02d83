"""Where the alerts service takes the time from.

`SystemClock` is the real one. `FileClock` reads the current time (ISO 8601 with an offset) from a
file, for scripted tests only (setting `PMS_ALERTS_CLOCK_FILE`): the test writes simulated time into
the file and every part of the service (liveness, the engine, the conditions, the notifier) sees it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

from pms_common import timeutil


class Clock(Protocol):
    def __call__(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    def __call__(self) -> datetime:
        return timeutil.now_jst()


class FileClock:
    """For tests only: the time written in a file. The last good reading stands while the file is
    being rewritten or holds something that is not an aware ISO 8601 time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: datetime | None = None

    def __call__(self) -> datetime:
        try:
            at = datetime.fromisoformat(self.path.read_text().strip())
        except (OSError, ValueError):
            at = None
        if at is not None and at.tzinfo is not None:
            self._last = at.astimezone(timeutil.JST)
        if self._last is None:
            raise RuntimeError(f"the clock file {self.path} holds no time with an offset")
        return self._last
