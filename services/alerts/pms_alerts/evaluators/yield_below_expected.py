"""yield_below_expected: on each of the last `days` (default 3) complete JST days, the plant sold
less than `share` (default 0.8) of what it was expected to.

"Expected" is pms_plant.expected's, the API's own: pms_pv's model on the plant's PV parameters and
the weather the store holds (clear sky where none), times the plant's calibration factor, the one
learned from its clear days (issue 14) - so a plant that always sells 70 % of the model (shading,
soiling, a house behind the meter) is flagged until calibration absorbs it, and not after.

Like with like: a day is compared over the slots whose sold energy the store has (expected summed
over those slots only); a day whose slots with data carry less than MIN_COVERAGE of its expected
energy, a day before the plant's first binding, and a dark day (expected below MIN_KWH_PER_KW per
kW) tell nothing. The verdict: holds when every day is known and below; clears when any known day
is not below; None otherwise (timers stay: a gap or a rainy day neither raises nor clears).

Cost: the model runs ~35 ms a plant-day, so each day's uncalibrated expectation is kept per (plant,
day, parameters) - a new day costs one plant-day per plant - and the verdict per plant is kept for
RECHECK_S (sold energy backfilled later, a new calibration, edited parameters are seen then). Each
tick computes verdicts only within its time budget (`budget_s`); plants not reached yet are None
this tick and computed at the next (a thousand plants after midnight take a few ticks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from pms_alerts.conditions import FleetFacts, Observation, PlantContext
from pms_alerts.evaluators.common import enabled, param, reads_since
from pms_common import timeutil
from pms_plant.expected import PlantExpectations, day_range
from pms_pv import PvParameters
from pms_registry.records import AlertRule, Plant
from pms_registry.registry import Registry
from pms_store import TimeSeriesStore

DEFAULT_SHARE = 0.8
DEFAULT_DAYS = 3
MIN_COVERAGE = 0.9
MIN_KWH_PER_KW = 0.5
RECHECK_S = 600.0
DEFAULT_BUDGET_S = 2.0


@dataclass(frozen=True)
class DayVerdict:
    day: date
    below: bool | None  # None: this day tells nothing
    sold_kwh: float
    expected_kwh: float  # calibrated, over the slots with sold energy


@dataclass(frozen=True)
class Kept:
    last_day: date
    share: float
    days: int
    computed_at: datetime
    observation: Observation


class YieldBelowExpected:
    kind = "yield_below_expected"

    def __init__(self, registry: Registry, store: TimeSeriesStore, *, budget_s: float = DEFAULT_BUDGET_S,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.expectations = PlantExpectations(registry, store)
        self.budget_s = budget_s
        self.monotonic = monotonic
        self._days: dict[tuple[str, date, PvParameters], dict[datetime, float]] = {}
        self._kept: dict[str, Kept] = {}

    def observe_all(self, plants: Sequence[PlantContext], rules: Mapping[str, AlertRule],
                    now: datetime, facts: FleetFacts) -> dict[str, Observation]:
        deadline = self.monotonic() + self.budget_s
        last_day = now.astimezone(timeutil.JST).date() - timedelta(days=1)
        observed: dict[str, Observation] = {}
        for context in enabled(plants, rules):
            plant = context.plant
            if plant.latitude is None or plant.longitude is None or not plant.bindings:
                continue
            rule = rules[context.service_code]
            share = param(rule, "share", DEFAULT_SHARE)
            days = max(1, int(param(rule, "days", DEFAULT_DAYS)))
            kept = self._kept.get(context.service_code)
            if kept is not None and (kept.last_day, kept.share, kept.days) == (last_day, share, days) \
                    and 0 <= (now - kept.computed_at).total_seconds() < RECHECK_S:
                observed[context.service_code] = kept.observation
                continue
            if self.monotonic() >= deadline:
                if kept is not None and (kept.last_day, kept.share, kept.days) == (last_day, share, days):
                    observed[context.service_code] = kept.observation
                continue
            observation = self.observe(plant, share, days, last_day)
            self._kept[context.service_code] = Kept(last_day, share, days, now, observation)
            observed[context.service_code] = observation
        self._forget_before(last_day - timedelta(days=62))
        return observed

    def observe(self, plant: Plant, share: float, days: int, last_day: date) -> Observation:
        first_day = last_day - timedelta(days=days - 1)
        verdicts = self.day_verdicts(plant, share, first_day, last_day)
        sold = round(sum(v.sold_kwh for v in verdicts if v.below is not None), 3)
        expected = round(sum(v.expected_kwh for v in verdicts if v.below is not None), 3)
        params = {"share": round(sold / expected, 3) if expected > 0 else None, "threshold_share": share,
                  "days": days, "actual_kwh": sold, "expected_kwh": expected,
                  "first_day": first_day.isoformat(), "last_day": last_day.isoformat(),
                  "below_days": sum(1 for v in verdicts if v.below)}
        if any(v.below is False for v in verdicts):
            return Observation(False, params)
        if all(v.below for v in verdicts):
            return Observation(True, params)
        return Observation(None, params)

    def day_verdicts(self, plant: Plant, share: float, first_day: date, last_day: date) -> list[DayVerdict]:
        params = self.expectations.parameters(plant)[0]
        plain = replace(params, calibration=1.0)
        start, end = day_range(first_day, last_day)
        sold: dict[datetime, float] = {}
        for point in self.expectations.reads.energy(plant, start, end, "30min"):
            if point.sold_kwh is not None:
                sold[point.period_end] = sold.get(point.period_end, 0.0) + point.sold_kwh
        since = reads_since(plant)

        def verdict(day: date, expected: dict[datetime, float]) -> DayVerdict:
            total = sum(expected.values()) * params.calibration
            covered = sum(kwh for slot_end, kwh in expected.items() if slot_end in sold) * params.calibration
            sold_kwh = sum(kwh for slot_end, kwh in sold.items() if slot_end in expected)
            known = (since is None or since <= timeutil.day_start(day)) and total >= MIN_KWH_PER_KW * params.dc_kw \
                and covered >= MIN_COVERAGE * total
            return DayVerdict(day, (sold_kwh < share * covered) if known else None, sold_kwh, covered)

        # The last day first: a plant that sold enough yesterday is cleared without modelling the days
        # before (the usual case, and a third of the model's cost after a restart).
        last = verdict(last_day, self.uncalibrated(plant, plain, last_day, last_day)[last_day])
        if last.below is False or first_day == last_day:
            return [last]
        earlier = self.uncalibrated(plant, plain, first_day, last_day - timedelta(days=1))
        return [*(verdict(day, expected) for day, expected in earlier.items()), last]

    def uncalibrated(self, plant: Plant, plain: PvParameters, first_day: date,
                     last_day: date) -> dict[date, dict[datetime, float]]:
        """Each day's expected energy per slot end, calibration 1 (a complete day's weather is final).
        The days not kept yet are computed in one run of the model (its cost is mostly per run)."""
        days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
        missing = [day for day in days if (plant.service_code, day, plain) not in self._days]
        if missing:
            computed: dict[date, dict[datetime, float]] = {day: {} for day in missing}
            for slot in self.expectations.slots(plant, plain, missing[0], missing[-1]):
                day = timeutil.jst_day_of_slot(slot.slot_end)
                if day in computed:
                    computed[day][slot.slot_end] = slot.expected_kwh
            for day, slots in computed.items():
                self._days[(plant.service_code, day, plain)] = slots
        return {day: self._days[(plant.service_code, day, plain)] for day in days}

    def _forget_before(self, day: date) -> None:
        if len(self._days) > 50_000 or any(key[1] < day for key in list(self._days)[:1]):
            self._days = {key: value for key, value in self._days.items() if key[1] >= day}
