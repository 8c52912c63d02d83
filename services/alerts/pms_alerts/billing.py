"""Billing-start rule: a plant's billing start date is the JST day of its first valid sold-energy slot.

It is decided once (the registry refuses a second decision) and logged as a `billing_start_decided`
event. The store's rollups make the search cheap: the first month with sold energy, then its first day.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pms_common import timeutil
from pms_registry import Registry
from pms_registry.registry import EventRecord
from pms_store import TimeSeriesStore

# Meters in Japan record at most 99 days of history and PMS started in 2026: nothing sold before this.
_EARLIEST = datetime(2000, 1, 1, tzinfo=timeutil.JST)


def first_sold_day(store: TimeSeriesStore, gateway_ids: list[str], now: datetime) -> date | None:
    """The JST day of the first slot with sold energy above zero, or None when nothing was sold yet."""
    end = now + timeutil.SLOT
    months = [p for p in store.energy_series(gateway_ids, _EARLIEST, end, "month") if (p.sold_kwh or 0) > 0]
    if not months:
        return None
    first_month = min(p.period_start for p in months)
    days = store.energy_series(gateway_ids, first_month, first_month + timedelta(days=32), "day")
    sold_days = [p.period_start.astimezone(timeutil.JST).date() for p in days if (p.sold_kwh or 0) > 0]
    return min(sold_days) if sold_days else None


class BillingStartRule:
    def __init__(self, registry: Registry, store: TimeSeriesStore) -> None:
        self.registry = registry
        self.store = store

    def check(self, now: datetime) -> list[EventRecord]:
        """Decide every undecided plant that has sold; returns the events of the decisions made."""
        decided = []
        for plant in self.registry.list_plants():
            if plant.billing_start_date is not None or not plant.gateway_ids:
                continue
            day = first_sold_day(self.store, list(plant.gateway_ids), now)
            if day is None:
                continue
            record = self.registry.decide_billing_start(plant.service_code, day, now)
            if record is not None:
                decided.append(record)
        return decided
