"""A daily budget of provider calls, counted per JST day and kept in a small JSON file, so a restart
does not hand out the day's calls again. Open-Meteo's free tier allows 10,000 calls a day."""

from __future__ import annotations

import json
import logging
import os
import threading
from datetime import date, datetime
from pathlib import Path

from prometheus_client import Counter, Gauge

from pms_common import timeutil

log = logging.getLogger(__name__)
USED = Gauge("pms_weather_budget_used_calls", "Provider calls counted against today's (JST) budget")
REFUSED = Counter("pms_weather_budget_refused_total", "Provider requests not sent: the daily call budget is spent")


class BudgetSpent(Exception):
    """The day's provider calls are spent; the next JST day starts a new budget."""


class CallBudget:
    def __init__(self, path: Path, calls_per_day: int) -> None:
        self.path = path
        self.calls_per_day = calls_per_day
        self._lock = threading.Lock()
        self._day, self._used = self._load()
        USED.set(self._used)

    def _load(self) -> tuple[date, int]:
        today = timeutil.now_jst().date()
        try:
            saved = json.loads(self.path.read_text())
            return date.fromisoformat(saved["day"]), int(saved["calls"])
        except FileNotFoundError:
            return today, 0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged file must not hand out a fresh budget: count the day as spent.
            log.error("weather: the call budget file %s is unreadable (%s); today's budget counts as spent",
                      self.path, exc)
            return today, self.calls_per_day

    def used(self, now: datetime) -> int:
        with self._lock:
            return self._used if now.astimezone(timeutil.JST).date() == self._day else 0

    def spend(self, calls: int, now: datetime) -> None:
        """Count `calls` against today's budget, or raise `BudgetSpent` and count nothing."""
        with self._lock:
            today = now.astimezone(timeutil.JST).date()
            if today != self._day:
                self._day, self._used = today, 0
            if self._used + calls > self.calls_per_day:
                REFUSED.inc()
                raise BudgetSpent(
                    f"the daily budget of {self.calls_per_day} provider calls is spent ({self._used} used on "
                    f"{today.isoformat()} JST); values stand in from cache or the clear-sky model until midnight JST"
                )
            self._used += calls
            USED.set(self._used)
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps({"day": self._day.isoformat(), "calls": self._used}))
        os.replace(partial, self.path)
