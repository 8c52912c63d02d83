"""A plant's expected yield: pms_pv's model on the plant's PV parameters (entered, else the defaults)
and calibration factor, fed the weather the store holds for the plant (clear sky where it holds
none); and the clear-day calibration that learns the factor from what the plant sold.

The API (expected-yield pages, the list's performance ratio) and alerts (yield_below_expected) run
this one code path, so an alert and the page it links to agree on what "expected" was."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

from pms_common import timeutil
from pms_common.messages import Weather
from pms_plant.bound_reads import BoundReads
from pms_pv import IrradianceSample, PvParameters, SlotExpectation, default_parameters, expected_slots
from pms_pv.model import CLEAR_SKY
from pms_pv.performance import DayFigures, Interval, aggregate, calibration_factor, clear_days
from pms_registry.pv import PV_FIELDS, PlantPv
from pms_registry.records import Plant
from pms_registry.registry import Registry
from pms_store import TimeSeriesStore

# The calibration looks back this many days (ending yesterday).
CALIBRATION_DAYS = 60


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


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    """[start, end) of JST days first..last."""
    return timeutil.day_start(first), timeutil.day_start(last + timedelta(days=1))


def slot_ends(first: date, last: date) -> list[datetime]:
    """The ends of the 30-minute slots of JST days first..last (the 00:00 slot closes a day)."""
    start, end = day_range(first, last)
    ends = []
    slot_end = start + timeutil.SLOT
    while slot_end <= end:
        ends.append(slot_end)
        slot_end += timeutil.SLOT
    return ends


class PlantExpectations:
    """Expected yield and sold energy of plants, from the registry and the store."""

    def __init__(self, registry: Registry, store: TimeSeriesStore) -> None:
        self.registry = registry
        self.store = store
        self.reads = BoundReads(store)

    def parameters(self, plant: Plant) -> tuple[PvParameters, list[str], PlantPv]:
        """(the parameters the model runs on, with the calibration; the names defaulted; as entered)."""
        entered = self.registry.plant_pv(plant.service_code)
        params, defaulted = resolved_parameters(plant, entered)
        return params, defaulted, entered

    def slots(self, plant: Plant, params: PvParameters, first: date, last: date) -> list[SlotExpectation]:
        """Expected energy per slot of JST days first..last under the stored weather (clear sky where none)."""
        if plant.latitude is None or plant.longitude is None:
            raise NoLocation(f"plant {plant.service_code} has no latitude and longitude: set them to get an "
                             "expected yield")
        start, end = day_range(first, last)
        # Period-ending weather: the value ending up to an hour after the last slot still covers it.
        stored = self.store.weather_series(plant.service_code, start + timeutil.SLOT, end + timedelta(hours=1))
        samples = [s for s in (irradiance_of(w) for w in stored) if s is not None]
        return expected_slots(plant.latitude, plant.longitude, params, slot_ends(first, last), samples)

    def sold(self, plant: Plant, first: date, last: date, interval: Interval) -> dict[datetime, float | None]:
        """Sold energy per period (keyed by period start; the sum over the plant's gateways, None where
        no gateway has a sold figure), only periods with at least one derived slot."""
        start, end = day_range(first, last)
        totals: dict[datetime, float | None] = {}
        for point in self.reads.energy(plant, start, end, interval):
            key = point.period_start
            if key not in totals:
                totals[key] = point.sold_kwh
            elif point.sold_kwh is not None:
                known = totals[key]
                totals[key] = round((known or 0.0) + point.sold_kwh, 6)
        return totals

    def metered(self, plant: Plant, slots: list[SlotExpectation], first: date, last: date) -> list[SlotExpectation]:
        """The slots of `slots` the plant has a sold figure for: what a ratio compares sold energy with.
        A period still running (today, this month) or with a gap in its readings is compared over the
        slots that were metered, never its whole expectation against the part that was (a month's
        expectation against its first days' sales read as a plant producing a fraction of its sky)."""
        start, end = day_range(first, last)
        metered = {p.period_end for p in self.reads.energy(plant, start, end, "30min") if p.sold_kwh is not None}
        return [s for s in slots if s.slot_end in metered]

    def daily(self, plant: Plant, first: date, last: date) -> list[tuple[date, float, float | None]]:
        """Per JST day first..last: (day, expected kWh with the plant's calibration, sold kWh or None)."""
        params = self.parameters(plant)[0]
        periods = aggregate(self.slots(plant, params, first, last), "day")
        sold = self.sold(plant, first, last, "day")
        return [(p.period_start.date(), p.expected_kwh, sold.get(p.period_start)) for p in periods]

    def day_figures(self, plant: Plant, params: PvParameters, first: date, last: date) -> list[DayFigures]:
        """What the calibration looks at, per day: expected (measured weather) and clear-sky energy, sold."""
        plain = replace(params, calibration=1.0)
        slots = self.slots(plant, plain, first, last)
        assert plant.latitude is not None and plant.longitude is not None
        clear = expected_slots(plant.latitude, plant.longitude, plain, [s.slot_end for s in slots], [])
        sold = self.sold(plant, first, last, "day")
        return [
            DayFigures(day=period.period_start.date(), expected_kwh=period.expected_kwh,
                       clear_sky_kwh=clear_day.expected_kwh, sold_kwh=sold.get(period.period_start),
                       measured_weather=period.sources != (CLEAR_SKY,))
            for period, clear_day in zip(aggregate(slots, "day"), aggregate(clear, "day"), strict=True)
        ]

    def calibrate(self, plant: Plant, now: datetime) -> tuple[float | None, int]:
        """Learn the factor from the last CALIBRATION_DAYS days (to yesterday) and store it;
        (factor or None, clear days)."""
        params = self.parameters(plant)[0]
        last = now.astimezone(timeutil.JST).date() - timedelta(days=1)
        first = last - timedelta(days=CALIBRATION_DAYS - 1)
        days = self.day_figures(plant, params, first, last)
        factor = calibration_factor(days)
        chosen = len(clear_days(days))
        if factor is not None:
            self.registry.set_calibration(plant.service_code, factor, now, chosen)
        return factor, chosen

