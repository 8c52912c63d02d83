"""Slot energy, rollups and peaks for the InfluxDB store, derived from the registers read back.

A write reads back the registers around the touched slots, derives slot energies with the one rule
in `pms_store.energy`, and rewrites the slots and the JST hour/day/month rollups they change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from pms_store import rollup
from pms_store.base import EnergyPoint, GatewayReadings, RegisterAnomaly, WriteOutcome
from pms_store.energy import anomalies_of_slot, derive_slot, describe, to_micros
from pms_store.influx_protocol import (
    _IDS_PER_QUERY,
    FieldValue,
    _chunks,
    _float_or_none,
    _line,
    _ql_any_of,
    _ql_string,
    _ql_time,
    _Series,
)

SLOT_S = int(timeutil.SLOT.total_seconds())

# The measurements and fields derived facts live in.

_ROLLUPS = {"hour": "energy_hour", "day": "energy_day", "month": "energy_month"}
_SLOT_FIELDS = ("forward_kwh", "reverse_kwh", "wrap_kwh", "backfilled", "bought_kwh", "sold_kwh",
                "bought_known", "sold_known")
_ROLLUP_FIELDS = ("sold_kwh", "bought_kwh", "sold_slots", "bought_slots", "slots", "backfilled_slots")


# A peak is ordered as (sold W, -measured_at): the higher power wins, on a tie the earlier sample.
Peak = tuple[int, int]


def _finite(new: float | None, old: float | None) -> float | None:
    """The new register if it is a usable number, else the stored one."""
    if new is not None and math.isfinite(new):
        return new
    return old


@dataclass(frozen=True)
class _Slot:
    """One stored `energy_slot` point, as far as derivation needs it."""

    forward_kwh: float | None = None
    reverse_kwh: float | None = None
    wrap_kwh: float | None = None
    backfilled: bool | None = None
    bought_kwh: float | None = None
    sold_kwh: float | None = None
    bought_known: bool = False
    sold_known: bool = False


def _power_lines(gateway_id: str, power: Sequence[PowerReading]) -> list[str]:
    tags = {"gateway_id": gateway_id}
    lines = []
    for p in power:
        line = _line(
            "power",
            tags,
            {
                "power_w": p.power_w,
                "sold_power_w": p.sold_power_w,
                "current_r_a": None if p.current_r_a is None else float(p.current_r_a),
                "current_t_a": None if p.current_t_a is None else float(p.current_t_a),
            },
            timeutil.to_epoch(p.measured_at),
        )
        if line is not None:
            lines.append(line)
    return lines


def _batch_peaks(batches: Sequence[GatewayReadings]) -> dict[tuple[str, int], Peak]:
    peaks: dict[tuple[str, int], Peak] = {}
    for batch in batches:
        for p in batch.power:
            t = timeutil.to_epoch(p.measured_at)
            key = (batch.gateway_id, rollup.day_start(t))
            candidate = (p.sold_power_w, -t)
            if key not in peaks or candidate > peaks[key]:
                peaks[key] = candidate
    return peaks


def _peak_statements(keys: Mapping[tuple[str, int], Peak]) -> list[str]:
    if not keys:
        return []
    ids = sorted({gw for gw, _ in keys})
    days = [day for _, day in keys]
    where = f"time >= {_ql_time(min(days))} AND time <= {_ql_time(max(days))}"
    return [
        f"SELECT peak_sold_w, measured_at FROM power_day_peak WHERE {_ql_any_of('gateway_id', chunk)}"  # noqa: S608
        f" AND {where} GROUP BY gateway_id"
        for chunk in _chunks(ids, _IDS_PER_QUERY)
    ]


def _peaks_of(results: Sequence[list[_Series]]) -> dict[tuple[str, int], Peak]:
    stored: dict[tuple[str, int], Peak] = {}
    for result in results:
        for series in result:
            gw = series.tags.get("gateway_id")
            for row in series.rows:
                if gw is not None and row.get("peak_sold_w") is not None and row.get("measured_at") is not None:
                    stored[(gw, int(row["time"]))] = (int(row["peak_sold_w"]), -int(row["measured_at"]))
    return stored


def _peak_line(key: tuple[str, int], peak: Peak) -> str:
    line = _line("power_day_peak", {"gateway_id": key[0]}, {"peak_sold_w": peak[0], "measured_at": -peak[1]}, key[1])
    assert line is not None
    return line


@dataclass(frozen=True)
class _Total:
    """One stored or computed rollup point: the slots with energy in a period, summed."""

    sold_kwh: float = 0.0
    bought_kwh: float = 0.0
    sold_slots: int = 0
    bought_slots: int = 0
    slots: int = 0
    backfilled_slots: int = 0

    def __add__(self, other: _Total) -> _Total:
        return _Total(
            self.sold_kwh + other.sold_kwh, self.bought_kwh + other.bought_kwh,
            self.sold_slots + other.sold_slots, self.bought_slots + other.bought_slots,
            self.slots + other.slots, self.backfilled_slots + other.backfilled_slots,
        )

    def rounded(self) -> _Total:
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


def _rollup_of(row: Mapping[str, Any]) -> _Total:
    return _Total(
        float(row.get("sold_kwh") or 0.0), float(row.get("bought_kwh") or 0.0),
        int(row.get("sold_slots") or 0), int(row.get("bought_slots") or 0),
        int(row.get("slots") or 0), int(row.get("backfilled_slots") or 0),
    )


def _slot_of(row: Mapping[str, Any]) -> _Slot:
    backfilled = row.get("backfilled")
    sold, bought = _float_or_none(row.get("sold_kwh")), _float_or_none(row.get("bought_kwh"))
    # A slot whose energy was voided keeps 0.0 and `*_known = false` (a field cannot be cleared);
    # points written before the `*_known` fields existed are known when they hold a figure.
    return _Slot(
        forward_kwh=_float_or_none(row.get("forward_kwh")),
        reverse_kwh=_float_or_none(row.get("reverse_kwh")),
        wrap_kwh=_float_or_none(row.get("wrap_kwh")),
        backfilled=None if backfilled is None else bool(backfilled),
        bought_kwh=bought,
        sold_kwh=sold,
        bought_known=bought is not None and row.get("bought_known") is not False,
        sold_known=sold is not None and row.get("sold_known") is not False,
    )


def _slot_total(slot: _Slot) -> _Total:
    if not (slot.sold_known or slot.bought_known):
        return _Total()
    return _Total(
        slot.sold_kwh or 0.0 if slot.sold_known else 0.0,
        slot.bought_kwh or 0.0 if slot.bought_known else 0.0,
        int(slot.sold_known), int(slot.bought_known), 1, int(bool(slot.backfilled)),
    )


class _GatewayEnergy:
    """The energy work of one gateway in one write: read what derivation needs, derive, roll up.

    One multi-statement read brings every stored register the touched slots derive from, every
    hour of the touched days, every day of the touched months and the anomalies already stored for
    the slots; the batches are applied to it in order, and the changed slots, the recomputed hour,
    day and month points and the anomalies not stored before become lines.
    """

    STATEMENTS = 4  # how many statements `statements()` returns, in the order `load()` takes them

    def __init__(
        self, gateway_id: str, items: list[tuple[GatewayReadings, WriteOutcome]], detected_at: datetime
    ) -> None:
        self.gateway_id = gateway_id
        self.items = items
        self.detected_at = detected_at
        # (slot_end, direction) of the anomalies stored or written: a point rewritten by a resend
        # would take a new detected_at and be reported again, so a known one is never rewritten.
        self.anomaly_keys: set[tuple[int, str]] = set()
        ends = [timeutil.to_epoch(r.slot_end) for batch, _ in items for r in batch.energy]
        self.hours = {rollup.hour_of_slot(end) for t in ends for end in (t, t + SLOT_S)}
        self.days = {rollup.day_start(hour) for hour in self.hours}
        self.months = {rollup.month_start(day) for day in self.days}
        self.slots: dict[int, _Slot] = {}
        self.stored_hours: dict[int, _Total] = {}
        self.stored_days: dict[int, _Total] = {}

    def statements(self) -> list[str]:
        gw = f"gateway_id = {_ql_string(self.gateway_id)}"
        # Slots ending in (H, H + 1 h] make hour H; the slot ending at H derives the first of them.
        first_slot, last_slot = min(self.hours), max(self.hours) + rollup.HOUR_S
        first_day, last_day = min(self.days), max(self.days) + rollup.DAY_S
        first_month, last_month = min(self.months), rollup.next_month_start(max(self.months))
        return [
            f"SELECT {', '.join(_SLOT_FIELDS)} FROM energy_slot WHERE {gw}"  # noqa: S608
            f" AND time >= {_ql_time(first_slot)} AND time <= {_ql_time(last_slot)}",
            f"SELECT {', '.join(_ROLLUP_FIELDS)} FROM energy_hour WHERE {gw}"  # noqa: S608
            f" AND time >= {_ql_time(first_day)} AND time < {_ql_time(last_day)}",
            f"SELECT {', '.join(_ROLLUP_FIELDS)} FROM energy_day WHERE {gw}"  # noqa: S608
            f" AND time >= {_ql_time(first_month)} AND time < {_ql_time(last_month)}",
            f"SELECT reason FROM register_anomaly WHERE {gw}"  # noqa: S608
            f" AND time >= {_ql_time(first_slot)} AND time <= {_ql_time(last_slot)} GROUP BY direction",
        ]

    def load(self, results: Sequence[list[_Series]]) -> None:
        slots, hours, days, anomalies = results
        self.anomaly_keys = {(int(row["time"]), s.tags.get("direction", "")) for s in anomalies for row in s.rows}
        self.slots = {int(row["time"]): _slot_of(row) for s in slots for row in s.rows}
        self.stored_hours = {int(row["time"]): _rollup_of(row) for s in hours for row in s.rows}
        self.stored_days = {int(row["time"]): _rollup_of(row) for s in days for row in s.rows}

    def apply(self) -> list[str]:
        lines: list[str] = []
        stored = dict(self.slots)
        incoming_ends: set[int] = set()
        for batch, outcome in self.items:
            incoming = _merge_copies(batch.energy)
            incoming_ends |= set(incoming)
            for slot_end, reading in incoming.items():
                old = self.slots.get(slot_end, _Slot())
                self.slots[slot_end] = replace(
                    old,
                    # A copy that lacks a register keeps the stored one (as field merge does on the server).
                    forward_kwh=_finite(reading.forward_kwh, old.forward_kwh),
                    reverse_kwh=_finite(reading.reverse_kwh, old.reverse_kwh),
                    wrap_kwh=_finite(reading.register_wrap_kwh, old.wrap_kwh),
                    # A slot once received live stays live; a backfilled copy later does not demote it.
                    backfilled=reading.backfilled and (old.backfilled is None or old.backfilled),
                )
            for slot_end in sorted(set(incoming) | {end + SLOT_S for end in incoming}):
                current = self.slots.get(slot_end)
                if current is None:
                    continue
                bought, sold = self._derive(slot_end, current, self.slots.get(slot_end - SLOT_S), outcome, lines)
                self.slots[slot_end] = replace(
                    current,
                    bought_kwh=bought if bought is not None else current.bought_kwh,
                    sold_kwh=sold if sold is not None else current.sold_kwh,
                    bought_known=bought is not None,
                    sold_known=sold is not None,
                )
        tags = {"gateway_id": self.gateway_id}
        for slot_end, slot in sorted(self.slots.items()):
            before = stored.get(slot_end)
            if slot == before and slot_end not in incoming_ends:
                continue
            fields: dict[str, FieldValue | None] = {
                "forward_kwh": slot.forward_kwh, "reverse_kwh": slot.reverse_kwh, "wrap_kwh": slot.wrap_kwh,
                "backfilled": slot.backfilled,
            }
            for name, value, known in (("bought", slot.bought_kwh, slot.bought_known),
                                       ("sold", slot.sold_kwh, slot.sold_known)):
                if known:
                    fields[f"{name}_kwh"], fields[f"{name}_known"] = value, True
                elif value is not None:
                    # Line protocol cannot clear a field: a voided figure becomes 0.0, which is what
                    # a sum must count for it, and `*_known = false` tells the series to skip it.
                    fields[f"{name}_kwh"], fields[f"{name}_known"] = 0.0, False
            line = _line("energy_slot", tags, fields, slot_end)
            if line is not None:
                lines.append(line)
        hours = dict(self.stored_hours)
        for hour in self.hours:
            hours[hour] = sum(
                (_slot_total(self.slots[end]) for end in (hour + SLOT_S, hour + rollup.HOUR_S) if end in self.slots),
                _Total(),
            ).rounded()
        days = dict(self.stored_days)
        for day in self.days:
            days[day] = _sum_in(hours, day, day + rollup.DAY_S)
        months = {month: _sum_in(days, month, rollup.next_month_start(month)) for month in self.months}
        for measurement, touched, totals in (("energy_hour", self.hours, hours), ("energy_day", self.days, days),
                                             ("energy_month", self.months, months)):
            for start in sorted(touched):
                line = _line(measurement, tags, totals[start].fields(), start)
                if line is not None:
                    lines.append(line)
        return lines

    def _derive(
        self, slot_end: int, current: _Slot, previous: _Slot | None, outcome: WriteOutcome, lines: list[str]
    ) -> tuple[float | None, float | None]:
        """A slot's (bought, sold) energy as SqliteStore derives it; a new anomaly becomes a line."""
        if previous is None:
            return None, None
        bought, sold, found = derive_slot((previous.forward_kwh, previous.reverse_kwh),
                                          (current.forward_kwh, current.reverse_kwh),
                                          current.wrap_kwh or previous.wrap_kwh)
        for anomaly in anomalies_of_slot(self.gateway_id, timeutil.from_epoch(slot_end), found, self.detected_at):
            if (slot_end, anomaly.direction) not in self.anomaly_keys:
                self.anomaly_keys.add((slot_end, anomaly.direction))
                lines.append(_anomaly_line(anomaly, slot_end))
                outcome.register_anomalies.append(describe(anomaly))
        return bought, sold


def _anomaly_line(anomaly: RegisterAnomaly, slot_end: int) -> str:
    line = _line(
        "register_anomaly",
        {"gateway_id": anomaly.gateway_id, "direction": anomaly.direction},
        {"previous_kwh": float(anomaly.previous_kwh), "current_kwh": float(anomaly.current_kwh),
         "reason": anomaly.reason, "detected_at_us": to_micros(anomaly.detected_at)},
        slot_end,
    )
    assert line is not None
    return line


def _sum_in(totals: Mapping[int, _Total], first: int, end: int) -> _Total:
    return sum((t for start, t in totals.items() if first <= start < end and t.slots > 0), _Total()).rounded()


def _merge_copies(energy: Sequence[EnergyReading]) -> dict[int, EnergyReading]:
    """The readings of one batch by slot end; two copies of a slot merge as two writes would."""
    incoming: dict[int, EnergyReading] = {}
    for reading in energy:
        slot_end = timeutil.to_epoch(reading.slot_end)
        earlier = incoming.get(slot_end)
        incoming[slot_end] = (
            reading
            if earlier is None
            else reading.model_copy(
                update={
                    "forward_kwh": _finite(reading.forward_kwh, earlier.forward_kwh),
                    "reverse_kwh": _finite(reading.reverse_kwh, earlier.reverse_kwh),
                    "register_wrap_kwh": _finite(reading.register_wrap_kwh, earlier.register_wrap_kwh),
                    "backfilled": reading.backfilled and earlier.backfilled,
                }
            )
        )
    return incoming
