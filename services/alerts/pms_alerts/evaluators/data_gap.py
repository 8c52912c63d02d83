"""data_gap: a 30-minute slot of the plant is still missing `window_h` hours (default 26) after its
end - the meter keeps its history and the collector backfills within that window, so a slot missing
later will not come by itself - looking back `lookback_days` (default 7).

A slot is present when the store derives its sold/bought energy (its register and the one before
it are stored). Per gateway, only slots inside its binding window count, and, for a gateway read
from its first reading on, only slots after the first one stored in the lookback (a new plant is
not missing the days before it existed). Holds while any slot is missing (the first and last named),
clears when all are filled.

Cost: evaluated at most every EVERY_S per plant set (its own cache: a slot's presence changes
slowly); each evaluation reads the day rollups of all gateways in one store query, and the 30-minute
slots only of the gateway-days that are not complete (48 slots) or cut by a binding's edge."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pms_alerts.conditions import FleetFacts, Observation, PlantContext
from pms_alerts.evaluators.common import enabled, param, stamp
from pms_common import timeutil
from pms_plant.bound_reads import Window, windows
from pms_registry.records import AlertRule
from pms_store import TimeSeriesStore

DEFAULT_WINDOW_H = 26.0
DEFAULT_LOOKBACK_DAYS = 7.0
EVERY_S = 300.0
SLOTS_PER_DAY = 48


@dataclass(frozen=True)
class Gap:
    gateway_id: str
    missing: tuple[datetime, ...]  # slot ends, oldest first


class DataGap:
    kind = "data_gap"

    def __init__(self, store: TimeSeriesStore, *, every_s: float = EVERY_S) -> None:
        self.store = store
        self.every_s = every_s
        self._kept: dict[str, tuple[datetime, tuple[float, float], Observation]] = {}

    def observe_all(self, plants: Sequence[PlantContext], rules: Mapping[str, AlertRule],
                    now: datetime, facts: FleetFacts) -> dict[str, Observation]:
        watched = [p for p in enabled(plants, rules) if p.plant.bindings]
        observed: dict[str, Observation] = {}
        due: dict[tuple[float, float], list[PlantContext]] = {}
        for context in watched:
            rule = rules[context.service_code]
            setting = (param(rule, "window_h", DEFAULT_WINDOW_H), param(rule, "lookback_days", DEFAULT_LOOKBACK_DAYS))
            kept = self._kept.get(context.service_code)
            if kept is not None and kept[1] == setting and 0 <= (now - kept[0]).total_seconds() < self.every_s:
                observed[context.service_code] = kept[2]
            else:
                due.setdefault(setting, []).append(context)
        for (window_h, lookback_days), group in due.items():
            for code, observation in self.evaluate(group, now, window_h, lookback_days).items():
                self._kept[code] = (now, (window_h, lookback_days), observation)
                observed[code] = observation
        return observed

    def evaluate(self, plants: Sequence[PlantContext], now: datetime, window_h: float,
                 lookback_days: float) -> dict[str, Observation]:
        last = timeutil.slot_end_at_or_before(now - timedelta(hours=window_h))  # the newest slot judged
        first = timeutil.slot_end_at_or_before(now - timedelta(days=lookback_days))  # slots end after it
        if last <= first:
            return {}
        windows_of = {p.service_code: [w for w in windows(p.plant) if w.clip(first, last) is not None]
                      for p in plants}
        gaps = self.gaps([w for ws in windows_of.values() for w in ws], first, last)
        observed = {}
        for context in plants:
            found = [gaps[w] for w in windows_of[context.service_code] if w in gaps]
            missing = sorted(slot for gap in found for slot in gap.missing)
            if not windows_of[context.service_code]:
                continue
            params: dict[str, object] = {"missing_slots": len(missing), "window_h": window_h,
                                         "lookback_days": lookback_days}
            if missing:
                gateway_id = next(g.gateway_id for g in found if g.missing and g.missing[0] == missing[0])
                params |= {"first_missing": stamp(missing[0]), "last_missing": stamp(missing[-1]),
                           "gateway_id": gateway_id}
                observed[context.service_code] = Observation(True, params, gateway_id=gateway_id)
            else:
                observed[context.service_code] = Observation(False, params)
        return observed

    def gaps(self, judged: Sequence[Window], first: datetime, last: datetime) -> dict[Window, Gap]:
        """The missing slots ending in (first, last] of each window (only windows with some)."""
        whole = {w for w in judged if w.covers(first, last)}
        days: dict[str, dict[date, int]] = {}  # gateway -> JST day -> derived slots
        if whole:
            for point in self.store.energy_series(sorted({w.gateway_id for w in whole}), first, last, "day"):
                if point.slots > 0:
                    days.setdefault(point.gateway_id, {})[point.period_start.astimezone(timeutil.JST).date()] = \
                        point.slots
        out: dict[Window, Gap] = {}
        for window in judged:
            lo, hi = window.clip(first, last) or (first, last)
            # From its first reading on: slots before the first one stored in the lookback do not count.
            from_first_stored = window.start is None
            if window in whole:
                stored = days.get(window.gateway_id, {})
                if not stored:
                    continue  # nothing stored in the lookback: a gateway not reading yet (meter_unreachable's)
                floor = min(stored) if from_first_stored else None
                suspect = [d for d in _days_of(lo, hi)
                           if stored.get(d, 0) < SLOTS_PER_DAY and (floor is None or d >= floor)]
                if not suspect:
                    continue
                from_first_stored = floor is not None and suspect[0] == floor
                lo = max(lo, timeutil.day_start(suspect[0]))
                hi = min(hi, timeutil.day_start(suspect[-1] + timedelta(days=1)))
            present = {p.period_end for p in self.store.energy_series([window.gateway_id], lo, hi, "30min")
                       if window.has_slot(p.period_end)}
            if from_first_stored:
                if not present:
                    continue
                lo = max(lo, min(present) - timeutil.SLOT)
            missing = tuple(s for s in _slot_ends(lo, hi) if s not in present and window.has_slot(s))
            if missing:
                out[window] = Gap(window.gateway_id, missing)
        return out


def _days_of(start: datetime, end: datetime) -> list[date]:
    """The JST days holding the slots ending in (start, end]."""
    first = timeutil.jst_day_of_slot(start + timeutil.SLOT)
    last = timeutil.jst_day_of_slot(end)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _slot_ends(start: datetime, end: datetime) -> list[datetime]:
    ends = []
    slot = timeutil.slot_end_at_or_before(start) + timeutil.SLOT
    while slot <= end:
        ends.append(slot)
        slot += timeutil.SLOT
    return ends
