"""A plant's measurements read through its gateways' binding intervals.

The store answers per gateway and time range; a plant owns a gateway's readings only while the
gateway was bound to it (pms_registry.bindings). Each binding becomes a read window, and each
window is one store query clipped to it (the store's contract stays as it is):

- a power sample taken at t belongs to a window when start <= t < end;
- a 30-minute slot belongs to it when start < slot_end <= end (a slot is named by its end, and its
  energy was metered in the half hour before: the slot ending at the handover is the old plant's);
- an hour/day/month the window covers whole comes from the store's rollup; a period cut by the
  window's edge is summed from its 30-minute slots inside the window (one more query per edge);
- a day's peak likewise: from the rollup when whole, from the power samples inside when cut.

Windows that cover the whole asked range are batched into one store call where the store takes
many gateways at once (the cross-plant list, the home screen's totals), so a fleet of plants that
never moved a gateway costs what it did before bindings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pms_common import timeutil
from pms_registry.records import Plant
from pms_store import DailyPeak, EnergyInterval, EnergyPoint, LatestPower, PowerPoint, TimeSeriesStore

# Stand-ins for "from the first reading" / "still bound" where the store needs a concrete moment.
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """Where a plant reads one gateway: [start, end) for samples, (start, end] for slots; None = unbounded."""

    gateway_id: str
    start: datetime | None
    end: datetime | None

    def clip(self, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        lo = start if self.start is None else max(start, self.start)
        hi = end if self.end is None else min(end, self.end)
        return (lo, hi) if lo < hi else None

    def covers(self, start: datetime, end: datetime) -> bool:
        """Whether [start, end) (samples) and (start, end] (slots) lie wholly in the window."""
        return (self.start is None or self.start <= start) and (self.end is None or end <= self.end)

    def has_sample(self, at: datetime) -> bool:
        return (self.start is None or self.start <= at) and (self.end is None or at < self.end)

    def has_slot(self, slot_end: datetime) -> bool:
        return (self.start is None or self.start < slot_end) and (self.end is None or slot_end <= self.end)


def windows(plant: Plant) -> list[Window]:
    return [Window(b.gateway_id, b.reads_from, b.bound_until) for b in plant.bindings]


class BoundReads:
    """The store's queries, for plants instead of gateways."""

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store

    # ---- one plant's series --------------------------------------------------------------------
    def power(self, plant: Plant, start: datetime, end: datetime) -> list[PowerPoint]:
        points: list[PowerPoint] = []
        for window in windows(plant):
            span = window.clip(start, end)
            if span is not None:
                points += self.store.power_series([window.gateway_id], *span)
        return points

    def energy(self, plant: Plant, start: datetime, end: datetime, interval: EnergyInterval) -> list[EnergyPoint]:
        """Per gateway and period, the energy the plant owns (callers sum the gateways)."""
        points: list[EnergyPoint] = []
        for window in windows(plant):
            span = window.clip(start, end)
            if span is None:
                continue
            found = self.store.energy_series([window.gateway_id], *span, interval)
            if interval == "30min":
                points += [p for p in found if window.has_slot(p.period_end)]
                continue
            for point in found:
                if window.covers(point.period_start, point.period_end):
                    points.append(point)
                else:
                    part = self._part_of_period(window, point)
                    if part is not None:
                        points.append(part)
        return points

    def _part_of_period(self, window: Window, period: EnergyPoint) -> EnergyPoint | None:
        span = window.clip(period.period_start, period.period_end)
        if span is None:
            return None
        slots = [s for s in self.store.energy_series([window.gateway_id], *span, "30min")
                 if window.has_slot(s.period_end) and period.period_start < s.period_end <= period.period_end]
        if not slots:
            return None
        return EnergyPoint(
            gateway_id=window.gateway_id, period_start=period.period_start, period_end=period.period_end,
            sold_kwh=_sum(s.sold_kwh for s in slots), bought_kwh=_sum(s.bought_kwh for s in slots),
            slots=len(slots), backfilled=any(s.backfilled for s in slots),
        )

    def peaks(self, plant: Plant, first: date, last: date) -> list[DailyPeak]:
        """Per gateway and JST day, the peak the plant owns (callers take the highest)."""
        peaks: list[DailyPeak] = []
        for window in windows(plant):
            span = window.clip(timeutil.day_start(first), timeutil.day_start(last + timedelta(days=1)))
            if span is None:
                continue
            lo, hi = span
            last_day = (hi - timedelta(microseconds=1)).astimezone(timeutil.JST).date()
            for peak in self.store.daily_peaks([window.gateway_id], lo.astimezone(timeutil.JST).date(), last_day):
                day = (timeutil.day_start(peak.day), timeutil.day_start(peak.day + timedelta(days=1)))
                if window.covers(*day):
                    peaks.append(peak)
                    continue
                part = window.clip(*day)
                samples = self.store.power_series([window.gateway_id], *part) if part else []
                if samples:
                    best = max(samples, key=lambda p: (p.sold_power_w, -p.measured_at.timestamp()))
                    peaks.append(DailyPeak(gateway_id=window.gateway_id, day=peak.day,
                                           peak_sold_w=best.sold_power_w, measured_at=best.measured_at))
        return peaks

    # ---- many plants at once -------------------------------------------------------------------
    def latest_power(self, plants: Sequence[Plant]) -> dict[str, list[LatestPower]]:
        """Per plant, the latest power sample of each gateway bound to it now, taken while bound."""
        current = [w for plant in plants for w in windows(plant) if w.end is None]
        latest = self.store.latest_power({w.gateway_id for w in current})
        out: dict[str, list[LatestPower]] = {plant.service_code: [] for plant in plants}
        for plant in plants:
            for window in windows(plant):
                power = latest.get(window.gateway_id)
                if window.end is None and power is not None and window.has_sample(power.measured_at):
                    out[plant.service_code].append(power)
        return out

    def sold_kwh_between(self, plants: Sequence[Plant], start: datetime, end: datetime) -> dict[str, float]:
        """Per plant, the sold energy of the slots ending in (start, end] that it owns."""
        return self._sold(plants, start, end, lambda ids: self.store.sold_kwh_between(ids, start, end))

    def total_sold_kwh(self, plants: Sequence[Plant]) -> dict[str, float]:
        """Per plant, all the sold energy it owns."""
        return self._sold(plants, EARLIEST, LATEST, self.store.total_sold_kwh)

    def _sold(self, plants: Sequence[Plant], start: datetime, end: datetime,
              whole: Callable[[list[str]], dict[str, float]]) -> dict[str, float]:
        totals = {plant.service_code: 0.0 for plant in plants}
        batched: dict[str, str] = {}  # gateway → plant, for windows that cover the whole range
        for plant in plants:
            for window in windows(plant):
                if window.covers(start, end):
                    batched[window.gateway_id] = plant.service_code
                    continue
                span = window.clip(start, end)
                if span is not None:
                    totals[plant.service_code] += sum(self.store.sold_kwh_between([window.gateway_id], *span).values())
        if batched:
            for gateway_id, kwh in whole(list(batched)).items():
                if gateway_id in batched:
                    totals[batched[gateway_id]] += kwh
        return {code: round(kwh, 6) for code, kwh in totals.items()}


def _sum(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known), 6) if known else None
