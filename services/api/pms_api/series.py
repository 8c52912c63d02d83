"""A plant's series from the store: its gateways' figures, each read within its binding intervals
(bound_reads), merged into one plant-level answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from pms_api.series_models import EnergyPointOut, PeakOut, PowerPointOut, PriceOut, WeatherOut
from pms_common import timeutil
from pms_plant.bound_reads import BoundReads
from pms_plant.pricing import Charge, PriceBook, merge, prices_label, slot_start, total_yen
from pms_registry.registry import Plant
from pms_registry.tariffs import Tariff
from pms_store import EnergyInterval, TimeSeriesStore


def day_range(first: date, last: date) -> tuple[datetime, datetime]:
    """[start, end) of JST days first..last."""
    return timeutil.day_start(first), timeutil.day_start(last + timedelta(days=1))


class SeriesFigures:
    """A plant's series, each a list of the API's point models in Japan time."""

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store
        self.reads = BoundReads(store)

    def power(self, plant: Plant, first: date, last: date) -> list[PowerPointOut]:
        start, end = day_range(first, last)
        points = self.reads.power(plant, start, end)
        return sorted(
            (PowerPointOut(measured_at=p.measured_at.astimezone(timeutil.JST), gateway_id=p.gateway_id,
                           sold_power_w=p.sold_power_w, power_w=p.power_w, current_r_a=p.current_r_a,
                           current_t_a=p.current_t_a) for p in points),
            key=lambda p: (p.measured_at, p.gateway_id),
        )

    def energy(self, plant: Plant, first: date, last: date, interval: EnergyInterval) -> list[EnergyPointOut]:
        """Per period, the sum over the plant's gateways (a figure unknown on every gateway stays null)."""
        start, end = day_range(first, last)
        merged: dict[datetime, EnergyPointOut] = {}
        for point in self.reads.energy(plant, start, end, interval):
            key = point.period_start
            seen = merged.get(key)
            if seen is None:
                merged[key] = EnergyPointOut(
                    period_start=point.period_start.astimezone(timeutil.JST),
                    period_end=point.period_end.astimezone(timeutil.JST), sold_kwh=point.sold_kwh,
                    bought_kwh=point.bought_kwh, slots=point.slots, backfilled=point.backfilled)
                continue
            merged[key] = seen.model_copy(update={
                "sold_kwh": _add(seen.sold_kwh, point.sold_kwh), "bought_kwh": _add(seen.bought_kwh, point.bought_kwh),
                "slots": seen.slots + point.slots, "backfilled": seen.backfilled or point.backfilled,
            })
        return [merged[key] for key in sorted(merged)]

    def peaks(self, plant: Plant, first: date, last: date) -> list[PeakOut]:
        """Each day's highest sold power; with several gateways, the highest of theirs."""
        best: dict[date, PeakOut] = {}
        for peak in self.reads.peaks(plant, first, last):
            seen = best.get(peak.day)
            if seen is None or peak.peak_sold_w > seen.peak_sold_w:
                best[peak.day] = PeakOut(day=peak.day, peak_sold_w=peak.peak_sold_w,
                                         measured_at=peak.measured_at.astimezone(timeutil.JST))
        return [best[day] for day in sorted(best)]

    def price(self, plant: Plant, history: Sequence[Tariff], first: date, last: date,
              interval: EnergyInterval) -> list[PriceOut]:
        """Sold energy × the price in force when it was sold (pms_plant.pricing), per day or month: a
        past period keeps its price after the tariff changes. Time-of-use days are priced slot by slot."""
        book = PriceBook(history)
        slots_by_day: dict[date, list[tuple[datetime, float]]] = {}
        if book.has_bands_within(first, last):
            for slot in self.energy(plant, first, last, "30min"):
                slots_by_day.setdefault(slot_start(slot.period_end).date(), []).append(
                    (slot.period_end, slot.sold_kwh or 0.0))
        day_charges: dict[date, list[Charge]] = {}
        for point in self.energy(plant, first, last, "day"):
            day = point.period_start.astimezone(timeutil.JST).date()
            tariff = book.tariff_on(day)
            day_charges[day] = (book.slot_charges(slots_by_day.get(day, [])) if tariff is not None and tariff.bands
                                else book.day_charges(day, point.sold_kwh or 0.0))
        out = []
        for point in self.energy(plant, first, last, interval):
            start, end = point.period_start.astimezone(timeutil.JST), point.period_end.astimezone(timeutil.JST)
            charges = merge([charge for day, found in day_charges.items() if start.date() <= day < end.date()
                             for charge in found])
            out.append(_priced(start, end, point.sold_kwh or 0.0, charges, book.tariff_on(start.date())))
        return out

    def weather(self, plant: Plant, first: date, last: date) -> list[WeatherOut]:
        start, end = day_range(first, last)
        return [
            WeatherOut(observed_at=w.observed_at.astimezone(timeutil.JST), ghi_w_m2=w.ghi_w_m2,
                       temperature_c=w.temperature_c, source=w.source, dni_w_m2=w.dni_w_m2, dhi_w_m2=w.dhi_w_m2,
                       gti_w_m2=w.gti_w_m2, cloud_cover_pct=w.cloud_cover_pct, weather_code=w.weather_code,
                       model=w.model, stale=w.stale)
            for w in self.store.weather_series(plant.service_code, start, end)
        ]


def _priced(start: datetime, end: datetime, sold: float, charges: Sequence[Charge],
            tariff_then: Tariff | None) -> PriceOut:
    """One period's price line: the one price it sold at (or the average of several, with all of them
    in `tariffs`); with nothing sold, the price in force at its start."""
    if not charges:
        price = None if tariff_then is None else tariff_then.yen_per_kwh
        return PriceOut(period_start=start, period_end=end, sold_kwh=round(sold, 6), tariff_yen_per_kwh=price,
                        amount_yen=None if price is None else 0.0, tariffs="" if price is None else f"{price:g}")
    charged_kwh = sum(charge.sold_kwh for charge in charges)
    amount = total_yen(charges)
    price = charges[0].yen_per_kwh if len(charges) == 1 else (round(amount / charged_kwh, 4) if charged_kwh else None)
    return PriceOut(period_start=start, period_end=end, sold_kwh=round(sold, 6), tariff_yen_per_kwh=price,
                    amount_yen=amount, tariffs=prices_label(charges))


def _add(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return round(a + b, 6)
