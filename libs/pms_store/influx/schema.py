"""The measurements the InfluxDB store keeps, and how their stored points read back.

Precision is seconds; a point is named by (measurement, tag set, time).
- `power`, tag gateway_id: power_w (int), sold_power_w (int), current_r_a, current_t_a; time = measured_at
- `energy_slot`, tag gateway_id: forward_kwh, reverse_kwh, wrap_kwh, backfilled (bool), bought_kwh,
  sold_kwh, bought_known, sold_known (bool); time = slot_end
- `energy_hour|day|month`, tag gateway_id: the rollups (`ROLLUP_FIELDS`); time = the JST period start
- `power_day_peak`, tag gateway_id: peak_sold_w, measured_at (epoch s); time = the JST day start
- `weather`, tag service_code: ghi_w_m2, temperature_c, source (string), and since Weather 1.3.0
  dni_w_m2, dhi_w_m2, gti_w_m2, cloud_cover_pct (floats), weather_code (integer), model (string),
  stale (boolean); time = observed_at (the end of the period the values describe)
- `expected`, tag service_code: expected_kwh (float), source (string), computed_at (epoch s);
  time = the slot's START (slot_end − 30 min), unlike `energy_slot`: Grafana sums it with
  GROUP BY time(1h|1d), whose buckets [t, t + period) then hold the slots of the hour or JST day
  the rollups stamp at t. A plant's expected energy per slot (ExpectedYield); a rewrite replaces it.
- `register_anomaly`, tags gateway_id, direction: previous_kwh, current_kwh, reason (string),
  detected_at_us (int, µs since the epoch); time = slot_end. Written only when not yet stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pms_store.base import EnergyPoint
from pms_store.influx.influxql import float_or_none
from pms_store.influx.line_protocol import FieldValue

ROLLUP_MEASUREMENTS = {"hour": "energy_hour", "day": "energy_day", "month": "energy_month"}
SLOT_FIELDS = ("forward_kwh", "reverse_kwh", "wrap_kwh", "backfilled", "bought_kwh", "sold_kwh",
               "bought_known", "sold_known")
ROLLUP_FIELDS = ("sold_kwh", "bought_kwh", "sold_slots", "bought_slots", "slots", "backfilled_slots")


@dataclass(frozen=True)
class StoredSlot:
    """One stored `energy_slot` point, as far as derivation and the series need it."""

    forward_kwh: float | None = None
    reverse_kwh: float | None = None
    wrap_kwh: float | None = None
    backfilled: bool | None = None
    bought_kwh: float | None = None
    sold_kwh: float | None = None
    bought_known: bool = False
    sold_known: bool = False


@dataclass(frozen=True)
class RollupTotal:
    """One stored or computed rollup point: the slots with energy in a period, summed."""

    sold_kwh: float = 0.0
    bought_kwh: float = 0.0
    sold_slots: int = 0
    bought_slots: int = 0
    slots: int = 0
    backfilled_slots: int = 0

    def __add__(self, other: RollupTotal) -> RollupTotal:
        return RollupTotal(
            self.sold_kwh + other.sold_kwh, self.bought_kwh + other.bought_kwh,
            self.sold_slots + other.sold_slots, self.bought_slots + other.bought_slots,
            self.slots + other.slots, self.backfilled_slots + other.backfilled_slots,
        )

    def rounded(self) -> RollupTotal:
        return replace(self, sold_kwh=round(self.sold_kwh, 6), bought_kwh=round(self.bought_kwh, 6))

    def point(self, gw: str, start: datetime, end: datetime) -> EnergyPoint:
        return EnergyPoint(
            gw, start, end,
            self.sold_kwh if self.sold_slots else None,
            self.bought_kwh if self.bought_slots else None,
            self.slots, self.backfilled_slots > 0,
        )

    def fields(self) -> dict[str, FieldValue | None]:
        # Every field, every time: an emptied period must overwrite what it held (0 slots = none).
        return {
            "sold_kwh": float(self.sold_kwh), "bought_kwh": float(self.bought_kwh),
            "sold_slots": self.sold_slots, "bought_slots": self.bought_slots,
            "slots": self.slots, "backfilled_slots": self.backfilled_slots,
        }


def rollup_of(row: Mapping[str, Any]) -> RollupTotal:
    return RollupTotal(
        float(row.get("sold_kwh") or 0.0), float(row.get("bought_kwh") or 0.0),
        int(row.get("sold_slots") or 0), int(row.get("bought_slots") or 0),
        int(row.get("slots") or 0), int(row.get("backfilled_slots") or 0),
    )


def slot_of(row: Mapping[str, Any]) -> StoredSlot:
    backfilled = row.get("backfilled")
    sold, bought = float_or_none(row.get("sold_kwh")), float_or_none(row.get("bought_kwh"))
    # A slot whose energy was voided keeps 0.0 and `*_known = false` (a field cannot be cleared);
    # points written before the `*_known` fields existed are known when they hold a figure.
    return StoredSlot(
        forward_kwh=float_or_none(row.get("forward_kwh")),
        reverse_kwh=float_or_none(row.get("reverse_kwh")),
        wrap_kwh=float_or_none(row.get("wrap_kwh")),
        backfilled=None if backfilled is None else bool(backfilled),
        bought_kwh=bought,
        sold_kwh=sold,
        bought_known=bought is not None and row.get("bought_known") is not False,
        sold_known=sold is not None and row.get("sold_known") is not False,
    )
