"""A plant's series from the store: its gateways' figures, each read within its binding intervals
(bound_reads), merged into one plant-level answer."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pms_api.series_models import EnergyPointOut, PeakOut, PowerPointOut, PriceOut, WeatherOut
from pms_common import timeutil
from pms_plant.bound_reads import BoundReads
from pms_registry.registry import Plant
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

    def price(self, plant: Plant, first: date, last: date, interval: EnergyInterval) -> list[PriceOut]:
        tariff = plant.tariff_yen_per_kwh
        return [
            PriceOut(period_start=point.period_start, period_end=point.period_end, sold_kwh=round(sold, 6),
                     tariff_yen_per_kwh=tariff, amount_yen=None if tariff is None else round(sold * tariff, 2))
            for point in self.energy(plant, first, last, interval)
            for sold in [point.sold_kwh or 0.0]
        ]

    def weather(self, plant: Plant, first: date, last: date) -> list[WeatherOut]:
        start, end = day_range(first, last)
        return [
            WeatherOut(observed_at=w.observed_at.astimezone(timeutil.JST), ghi_w_m2=w.ghi_w_m2,
                       temperature_c=w.temperature_c, source=w.source, dni_w_m2=w.dni_w_m2, dhi_w_m2=w.dhi_w_m2,
                       gti_w_m2=w.gti_w_m2, cloud_cover_pct=w.cloud_cover_pct, weather_code=w.weather_code,
                       model=w.model, stale=w.stale)
            for w in self.store.weather_series(plant.service_code, start, end)
        ]


def _add(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return round(a + b, 6)
