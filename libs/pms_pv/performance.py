"""Expected energy summed to the meter's periods, the performance ratios, and the calibration factor.

What is compared with what: the meter measures SOLD energy (reverse flow), not generation; a plant
with a house behind the meter consumes part of what it generates. So every ratio here is
"sold ÷ something" and, for such a plant, a LOWER BOUND of the true ratio (for a full-sale plant,
全量売電, it is the ratio itself):
- sold_ratio = sold ÷ expected (the calibrated expectation);
- pr_sold = sold ÷ (DC capacity × plane-of-array insolation / 1 kW/m²): IEC 61724-1's performance
  ratio with sold energy in place of generated energy;
- pr_sold_temp = the same with the reference corrected to the cell temperature (× (1 + γ (T_cell − 25))).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from pms_common import timeutil
from pms_pv.model import CLEAR_SKY, SlotExpectation
from pms_pv.params import CALIBRATION_MAX, CALIBRATION_MIN

Interval = Literal["30min", "hour", "day", "month"]
# A day is "clear" when the measured-weather expectation reaches this share of the clear-sky one.
CLEAR_DAY_SHARE = 0.9
MIN_CLEAR_DAYS = 3
# Without measured weather, the best days stand for clear days: this share of the days, at least MIN.
BEST_DAYS_SHARE = 0.2


@dataclass(frozen=True)
class ExpectedPeriod:
    period_start: datetime
    period_end: datetime
    expected_kwh: float
    stc_kwh: float
    stc_temp_kwh: float
    sources: tuple[str, ...]

    @property
    def source(self) -> str:
        return "+".join(self.sources)


def period_of(slot_end: datetime, interval: Interval) -> tuple[datetime, datetime]:
    """The JST period holding the slot ending at `slot_end`: (start, end], as pms_store names them."""
    end = slot_end.astimezone(timeutil.JST)
    if interval == "30min":
        return end - timeutil.SLOT, end
    begin = end - timeutil.SLOT  # the slot's start lies inside the period
    if interval == "hour":
        start = begin.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = begin.date()
    if interval == "day":
        return timeutil.day_start(day), timeutil.day_start(day + timedelta(days=1))
    first = day.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return timeutil.day_start(first), timeutil.day_start(following)


def aggregate(slots: Iterable[SlotExpectation], interval: Interval) -> list[ExpectedPeriod]:
    sums: dict[datetime, list[float]] = {}
    ends: dict[datetime, datetime] = {}
    sources: dict[datetime, set[str]] = {}
    for slot in slots:
        start, end = period_of(slot.slot_end, interval)
        total = sums.setdefault(start, [0.0, 0.0, 0.0])
        total[0] += slot.expected_kwh
        total[1] += slot.stc_kwh
        total[2] += slot.stc_temp_kwh
        ends[start] = end
        sources.setdefault(start, set()).add(slot.source)
    return [ExpectedPeriod(start, ends[start], round(s[0], 6), round(s[1], 6), round(s[2], 6),
                           tuple(sorted(sources[start])))
            for start in sorted(sums) for s in [sums[start]]]


def ratio(sold_kwh: float | None, reference_kwh: float) -> float | None:
    """sold ÷ reference, None when either is unknown or the reference is too small to mean anything."""
    if sold_kwh is None or reference_kwh < 1e-3:
        return None
    return round(sold_kwh / reference_kwh, 4)


@dataclass(frozen=True)
class DayFigures:
    """One JST day of a plant, uncalibrated: the expectation under the weather it had (clear sky when
    no weather was measured), under clear sky, and the energy sold."""

    day: date
    expected_kwh: float
    clear_sky_kwh: float
    sold_kwh: float | None
    measured_weather: bool


def clear_days(days: Sequence[DayFigures]) -> list[DayFigures]:
    """Days that tell the plant's own losses (shading, soiling, an odd orientation) from the weather:
    with measured weather, the days it was near clear sky; without, the best days (top 20 %): a
    plant's best days are its clear ones."""
    usable = [d for d in days if d.sold_kwh is not None and d.sold_kwh > 0 and d.expected_kwh > 0.1]
    measured = [d for d in usable if d.measured_weather]
    if len(measured) >= MIN_CLEAR_DAYS:
        return [d for d in measured if d.expected_kwh >= CLEAR_DAY_SHARE * d.clear_sky_kwh]
    ranked = sorted(usable, key=lambda d: (d.sold_kwh or 0.0) / d.expected_kwh, reverse=True)
    return ranked[: max(MIN_CLEAR_DAYS, round(len(ranked) * BEST_DAYS_SHARE))]


def calibration_factor(days: Sequence[DayFigures]) -> float | None:
    """The median of sold ÷ expected over the clear days, bounded to [0.5, 1.1]; None when fewer than
    three clear days are known (keep the factor there is)."""
    chosen = clear_days(days)
    if len(chosen) < MIN_CLEAR_DAYS:
        return None
    factor = statistics.median((d.sold_kwh or 0.0) / d.expected_kwh for d in chosen)
    return round(min(CALIBRATION_MAX, max(CALIBRATION_MIN, factor)), 4)


def is_clear_sky(source: str) -> bool:
    return source == CLEAR_SKY
