"""What sold energy is paid: slots priced by a plant's tariff history, with no I/O.

A 30-minute slot is named by its end, as the meter stamps it; its energy was sold in the half hour
before. So the slot is priced by the tariff in force on the JST day of its START (the slot ending
00:00 belongs to the day before) and, with time-of-use bands, by the band containing its start.
A whole day is priced at once when its tariff has no bands: a tariff changes only at a day's start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pms_common import timeutil
from pms_registry.tariffs import Tariff, tariff_in_force

SLOT = timedelta(minutes=30)


def slot_start(slot_end: datetime) -> datetime:
    return (slot_end - SLOT).astimezone(timeutil.JST)


@dataclass(frozen=True)
class Charge:
    """Sold energy at one price: the sum of what a period sold at that price."""

    yen_per_kwh: float
    sold_kwh: float

    @property
    def amount_yen(self) -> float:
        return self.sold_kwh * self.yen_per_kwh


class PriceBook:
    """A plant's tariff history, oldest first, asked for the price of a slot or a day."""

    def __init__(self, history: Sequence[Tariff]) -> None:
        self.history = sorted(history, key=lambda tariff: (tariff.effective_from is not None,
                                                           tariff.effective_from or date.min))

    def tariff_on(self, day: date) -> Tariff | None:
        return tariff_in_force(self.history, day)

    def slot_price(self, slot_end: datetime) -> float | None:
        """Yen per kWh of the slot ending at `slot_end`; None when the plant had no price that day."""
        start = slot_start(slot_end)
        tariff = self.tariff_on(start.date())
        if tariff is None:
            return None
        minute = start.hour * 60 + start.minute
        for band in tariff.bands:
            if band.start_min <= minute < band.end_min:
                return band.yen_per_kwh
        return tariff.yen_per_kwh

    def has_bands_within(self, first: date, last: date) -> bool:
        """Whether a tariff with time-of-use bands is in force on some day of first..last (then a
        day's amount needs its 30-minute slots)."""
        return any(tariff.bands and (tariff.effective_from is None or tariff.effective_from <= last)
                   and not self._ends_before(tariff, first) for tariff in self.history)

    def _ends_before(self, tariff: Tariff, day: date) -> bool:
        """Whether a later row took over from `tariff` on or before `day`."""
        later = [other.effective_from for other in self.history
                 if other.effective_from is not None and (tariff.effective_from is None
                                                         or other.effective_from > tariff.effective_from)]
        return bool(later) and min(later) <= day

    def day_charges(self, day: date, sold_kwh: float) -> list[Charge]:
        """A whole day's sale under a flat tariff (empty when the plant had no price that day)."""
        tariff = self.tariff_on(day)
        return [] if tariff is None else [Charge(tariff.yen_per_kwh, sold_kwh)]

    def slot_charges(self, slots: Sequence[tuple[datetime, float]]) -> list[Charge]:
        """Slots (end, sold kWh) summed per price; a slot without a price is left out."""
        by_price: dict[float, float] = {}
        for slot_end, sold in slots:
            price = self.slot_price(slot_end)
            if price is not None:
                by_price[price] = by_price.get(price, 0.0) + sold
        return [Charge(price, sold) for price, sold in by_price.items()]


def merge(charges: Sequence[Charge]) -> list[Charge]:
    """Charges at the same price added up, in the order prices first appear."""
    by_price: dict[float, float] = {}
    for charge in charges:
        by_price[charge.yen_per_kwh] = by_price.get(charge.yen_per_kwh, 0.0) + charge.sold_kwh
    return [Charge(price, sold) for price, sold in by_price.items()]


def total_yen(charges: Sequence[Charge]) -> float:
    return round(sum(charge.amount_yen for charge in charges), 2)


def prices_label(charges: Sequence[Charge]) -> str:
    """The prices applied, as a settlement sheet shows them: "16" or "16 / 14.5"."""
    return " / ".join(f"{charge.yen_per_kwh:g}" for charge in charges)
