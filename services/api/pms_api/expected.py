"""A plant's expected yield beside what it sold: pms_pv's model on the plant's PV parameters and the
weather the store holds for it (clear sky where it holds none), joined with the sold energy."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date, datetime, timedelta

from prometheus_client import Counter

from pms_api.expected_models import ExpectedPointOut
from pms_api.series import SeriesFigures, day_range
from pms_common import timeutil
from pms_common.messages import Weather
from pms_pv import IrradianceSample, PvParameters, SlotExpectation, default_parameters, expected_slots
from pms_pv.model import CLEAR_SKY
from pms_pv.performance import DayFigures, Interval, aggregate, calibration_factor, clear_days, ratio
from pms_registry.pv import PV_FIELDS, PlantPv
from pms_registry.registry import Plant, Registry
from pms_store import TimeSeriesStore

# The calibration looks back this many days (ending yesterday).
CALIBRATION_DAYS = 60
# The list's PR of yesterday is kept this long per plant and parameters: the model costs ~35 ms a
# plant-day, and the console refreshes the whole list every 20 s (bench/expected_yield.py).
RATIO_TTL_S = 900.0


RATIOS_DEFERRED = Counter("pms_api_list_ratios_deferred_total",
                          "Plants of a list answer whose ratio was left for a later refresh (the list's time budget)")


class NoLocation(Exception):
    """The plant has no latitude/longitude: the sun's position, and so the expectation, is unknown."""


def resolved_parameters(plant: Plant, entered: PlantPv) -> tuple[PvParameters, list[str]]:
    """The parameters the model runs on (entered, else default) and the names left at their default."""
    defaults = default_parameters(plant.capacity_kw)
    values = {name: getattr(entered, name) for name in PV_FIELDS}
    if values["dc_kw"] is not None and values["ac_kw"] is None:
        values["ac_kw"] = round(values["dc_kw"] / (defaults.dc_kw / defaults.ac_kw), 3)
    defaulted = [name for name in PV_FIELDS if getattr(entered, name) is None]
    chosen = {name: value if value is not None else getattr(defaults, name) for name, value in values.items()}
    return PvParameters(**chosen, calibration=entered.calibration_factor or 1.0), defaulted


def irradiance_of(weather: Weather) -> IrradianceSample | None:
    """A stored weather value as the model's input; None for the weather service's own clear-sky
    estimate (pvlib's clear sky, at the slot's midpoint, replaces it)."""
    if weather.source.startswith("clear"):
        return None
    model = getattr(weather, "model", None)
    return IrradianceSample(
        period_end=weather.observed_at, ghi=weather.ghi_w_m2, dni=getattr(weather, "dni_w_m2", None),
        dhi=getattr(weather, "dhi_w_m2", None), temp_air_c=weather.temperature_c,
        source=f"{weather.source}:{model}" if model else weather.source)


class ExpectedFigures:
    def __init__(self, registry: Registry, store: TimeSeriesStore, series: SeriesFigures) -> None:
        self.registry = registry
        self.store = store
        self.series = series
        self._ratios: dict[tuple[str, date, PvParameters], tuple[float, float | None]] = {}

    def parameters(self, plant: Plant) -> tuple[PvParameters, list[str], PlantPv]:
        entered = self.registry.plant_pv(plant.service_code)
        params, defaulted = resolved_parameters(plant, entered)
        return params, defaulted, entered

    def slots(self, plant: Plant, params: PvParameters, first: date, last: date) -> list[SlotExpectation]:
        if plant.latitude is None or plant.longitude is None:
            raise NoLocation(f"plant {plant.service_code} has no latitude and longitude: set them to get an "
                             "expected yield")
        start, end = day_range(first, last)
        ends = []
        slot_end = start + timeutil.SLOT
        while slot_end <= end:
            ends.append(slot_end)
            slot_end += timeutil.SLOT
        # Period-ending weather: the value ending up to an hour after the last slot still covers it.
        stored = self.store.weather_series(plant.service_code, start + timeutil.SLOT, end + timedelta(hours=1))
        samples = [s for s in (irradiance_of(w) for w in stored) if s is not None]
        return expected_slots(plant.latitude, plant.longitude, params, ends, samples)

    def points(self, plant: Plant, first: date, last: date, interval: Interval) -> tuple[float, list[ExpectedPointOut]]:
        params, _, _ = self.parameters(plant)
        periods = aggregate(self.slots(plant, params, first, last), interval)
        sold = {p.period_start: p.sold_kwh for p in self.series.energy(plant, first, last, interval)}
        return params.calibration, [
            ExpectedPointOut(
                period_start=p.period_start, period_end=p.period_end, expected_kwh=round(p.expected_kwh, 4),
                sold_kwh=sold.get(p.period_start), sold_ratio=ratio(sold.get(p.period_start), p.expected_kwh),
                pr_sold=ratio(sold.get(p.period_start), p.stc_kwh),
                pr_sold_temp=ratio(sold.get(p.period_start), p.stc_temp_kwh), source=p.source)
            for p in periods
        ]

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

    def calibrate(self, plant: Plant, now: datetime) -> tuple[float | None, int]:
        """Learn the factor from the last 60 days (to yesterday) and store it; (factor or None, clear days)."""
        params, _, _ = self.parameters(plant)
        plain = replace(params, calibration=1.0)
        last = now.astimezone(timeutil.JST).date() - timedelta(days=1)
        first = last - timedelta(days=CALIBRATION_DAYS - 1)
        slots = self.slots(plant, plain, first, last)
        assert plant.latitude is not None and plant.longitude is not None
        clear = expected_slots(plant.latitude, plant.longitude, plain, [s.slot_end for s in slots], [])
        sold = {p.period_start: p.sold_kwh for p in self.series.energy(plant, first, last, "day")}
        days = [
            DayFigures(day=period.period_start.date(), expected_kwh=period.expected_kwh,
                       clear_sky_kwh=clear_day.expected_kwh, sold_kwh=sold.get(period.period_start),
                       measured_weather=period.sources != (CLEAR_SKY,))
            for period, clear_day in zip(aggregate(slots, "day"), aggregate(clear, "day"), strict=True)
        ]
        factor = calibration_factor(days)
        chosen = len(clear_days(days))
        if factor is not None:
            self.registry.set_calibration(plant.service_code, factor, now, chosen)
        return factor, chosen
