"""A plant's expected yield beside what it sold, as the API's points: pms_plant.expected (the model on
the plant's PV parameters and stored weather, shared with alerts) joined with the sold energy."""

from __future__ import annotations

import time
from datetime import date, datetime

from prometheus_client import Counter

from pms_api.expected_models import ExpectedPointOut
from pms_api.series import SeriesFigures
from pms_plant.expected import CALIBRATION_DAYS, NoLocation, PlantExpectations, irradiance_of, resolved_parameters
from pms_pv import PvParameters, SlotExpectation
from pms_pv.performance import ExpectedPeriod, Interval, aggregate, ratio
from pms_registry.pv import PlantPv
from pms_registry.registry import Plant, Registry
from pms_store import TimeSeriesStore

__all__ = ["CALIBRATION_DAYS", "RATIOS_DEFERRED", "ExpectedFigures", "NoLocation", "irradiance_of",
           "resolved_parameters"]

# The list's PR of yesterday is kept this long per plant and parameters: the model costs ~35 ms a
# plant-day, and the console refreshes the whole list every 20 s (bench/expected_yield.py).
RATIO_TTL_S = 900.0


RATIOS_DEFERRED = Counter("pms_api_list_ratios_deferred_total",
                          "Plants of a list answer whose ratio was left for a later refresh (the list's time budget)")


class ExpectedFigures:
    def __init__(self, registry: Registry, store: TimeSeriesStore, series: SeriesFigures) -> None:
        self.registry = registry
        self.store = store
        self.series = series
        self.plants = PlantExpectations(registry, store)
        self._ratios: dict[tuple[str, date, PvParameters], tuple[float, float | None]] = {}

    def parameters(self, plant: Plant) -> tuple[PvParameters, list[str], PlantPv]:
        return self.plants.parameters(plant)

    def slots(self, plant: Plant, params: PvParameters, first: date, last: date) -> list[SlotExpectation]:
        return self.plants.slots(plant, params, first, last)

    def points(self, plant: Plant, first: date, last: date, interval: Interval) -> tuple[float, list[ExpectedPointOut]]:
        params, _, _ = self.parameters(plant)
        slots = self.slots(plant, params, first, last)
        periods = aggregate(slots, interval)
        # The ratios compare sold energy with the expectation of the same slots (those metered).
        like = {p.period_start: p for p in aggregate(self.plants.metered(plant, slots, first, last), interval)}
        sold = {p.period_start: p.sold_kwh for p in self.series.energy(plant, first, last, interval)}
        return params.calibration, [_point(p, sold.get(p.period_start), like.get(p.period_start)) for p in periods]

    def day_ratio(self, plant: Plant, day: date, *, compute_until: float | None = None) -> float | None:
        """One day's pr_sold (the cross-plant list shows yesterday's); None without a location or data.
        Kept for RATIO_TTL_S per plant, day and parameters (new parameters or calibration: recomputed).
        With `compute_until` (a time.monotonic() deadline), a ratio not kept yet is computed only before
        it, else None for now: the model costs tens of milliseconds a plant, and a list of a thousand
        plants must not wait for all of them (each refresh computes some more)."""
        if plant.latitude is None or plant.longitude is None or not plant.bindings:
            return None
        key = (plant.service_code, day, self.parameters(plant)[0])
        now = time.monotonic()
        cached = self._ratios.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        if compute_until is not None and now >= compute_until:
            RATIOS_DEFERRED.inc()
            return None
        if len(self._ratios) > 10_000:
            self._ratios = {k: v for k, v in self._ratios.items() if v[0] > now}
        value = self.points(plant, day, day, "day")[1][0].pr_sold
        self._ratios[key] = (now + RATIO_TTL_S, value)
        return value

    def kept_ratios(self, day: date) -> dict[str, float | None]:
        """The ratios of `day` kept now, per plant (those list pages have shown): no model runs here, so
        the whole fleet's snapshot can sort by PR at once (pms_api.fleet_snapshot)."""
        now = time.monotonic()
        return {code: value for (code, kept_day, _), (until, value) in list(self._ratios.items())
                if kept_day == day and until > now}

    def calibrate(self, plant: Plant, now: datetime) -> tuple[float | None, int]:
        """Learn the factor from the last 60 days (to yesterday) and store it; (factor or None, clear days)."""
        return self.plants.calibrate(plant, now)


def _point(period: ExpectedPeriod, sold_kwh: float | None, metered: ExpectedPeriod | None) -> ExpectedPointOut:
    """A period's expectation beside what it sold; the ratios over its metered slots only (`metered`)."""
    references = (None, None, None) if metered is None else (metered.expected_kwh, metered.stc_kwh,
                                                               metered.stc_temp_kwh)
    sold_ratio, pr_sold, pr_sold_temp = (None if r is None else ratio(sold_kwh, r) for r in references)
    return ExpectedPointOut(
        period_start=period.period_start, period_end=period.period_end, expected_kwh=round(period.expected_kwh, 4),
        sold_kwh=sold_kwh, sold_ratio=sold_ratio, pr_sold=pr_sold, pr_sold_temp=pr_sold_temp, source=period.source)
