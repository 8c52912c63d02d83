"""Slot energy, rollups and peaks for the InfluxDB store, derived from the registers read back.

A write reads back the registers around the touched slots, derives slot energies with the one rule
in `pms_store.energy`, and rewrites the slots and the JST hour/day/month rollups they change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from pms_common import timeutil
from pms_common.messages import EnergyReading, PowerReading
from pms_store import rollup
from pms_store.base import GatewayReadings, RegisterAnomaly, WriteOutcome
from pms_store.energy import anomalies_of_slot, derive_slot, describe, to_micros
from pms_store.influx.influxql import IDS_PER_QUERY, Series, chunks, ql_any_of, ql_string, ql_time
from pms_store.influx.line_protocol import FieldValue, point_line
from pms_store.influx.schema import ROLLUP_FIELDS, SLOT_FIELDS, RollupTotal, StoredSlot, rollup_of, slot_of

SLOT_S = int(timeutil.SLOT.total_seconds())

# A peak is ordered as (sold W, -measured_at): the higher power wins, on a tie the earlier sample.
Peak = tuple[int, int]


def _finite(new: float | None, old: float | None) -> float | None:
    """The new register if it is a usable number, else the stored one."""
    if new is not None and math.isfinite(new):
        return new
    return old


def power_lines(gateway_id: str, power: Sequence[PowerReading]) -> list[str]:
    tags = {"gateway_id": gateway_id}
    lines = []
    for p in power:
        line = point_line(
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


def batch_peaks(batches: Sequence[GatewayReadings]) -> dict[tuple[str, int], Peak]:
    peaks: dict[tuple[str, int], Peak] = {}
    for batch in batches:
        for p in batch.power:
            t = timeutil.to_epoch(p.measured_at)
            key = (batch.gateway_id, rollup.day_start(t))
            candidate = (p.sold_power_w, -t)
            if key not in peaks or candidate > peaks[key]:
                peaks[key] = candidate
    return peaks


def peak_statements(keys: Mapping[tuple[str, int], Peak]) -> list[str]:
    if not keys:
        return []
    ids = sorted({gw for gw, _ in keys})
    days = [day for _, day in keys]
    where = f"time >= {ql_time(min(days))} AND time <= {ql_time(max(days))}"
    return [
        f"SELECT peak_sold_w, measured_at FROM power_day_peak WHERE {ql_any_of('gateway_id', chunk)}"  # noqa: S608
        f" AND {where} GROUP BY gateway_id"
        for chunk in chunks(ids, IDS_PER_QUERY)
    ]


def peaks_of(results: Sequence[list[Series]]) -> dict[tuple[str, int], Peak]:
    stored: dict[tuple[str, int], Peak] = {}
    for result in results:
        for series in result:
            gw = series.tags.get("gateway_id")
            for row in series.rows:
                if gw is not None and row.get("peak_sold_w") is not None and row.get("measured_at") is not None:
                    stored[(gw, int(row["time"]))] = (int(row["peak_sold_w"]), -int(row["measured_at"]))
    return stored


def peak_line(key: tuple[str, int], peak: Peak) -> str:
    fields = {"peak_sold_w": peak[0], "measured_at": -peak[1]}
    line = point_line("power_day_peak", {"gateway_id": key[0]}, fields, key[1])
    assert line is not None
    return line


def _slot_total(slot: StoredSlot) -> RollupTotal:
    if not (slot.sold_known or slot.bought_known):
        return RollupTotal()
    return RollupTotal(
        slot.sold_kwh or 0.0 if slot.sold_known else 0.0,
        slot.bought_kwh or 0.0 if slot.bought_known else 0.0,
        int(slot.sold_known), int(slot.bought_known), 1, int(bool(slot.backfilled)),
    )


class GatewayEnergy:
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
        self.slots: dict[int, StoredSlot] = {}
        self.stored_hours: dict[int, RollupTotal] = {}
        self.stored_days: dict[int, RollupTotal] = {}

    def statements(self) -> list[str]:
        gw = f"gateway_id = {ql_string(self.gateway_id)}"
        # Slots ending in (H, H + 1 h] make hour H; the slot ending at H derives the first of them.
        first_slot, last_slot = min(self.hours), max(self.hours) + rollup.HOUR_S
        first_day, last_day = min(self.days), max(self.days) + rollup.DAY_S
        first_month, last_month = min(self.months), rollup.next_month_start(max(self.months))
        return [
            f"SELECT {', '.join(SLOT_FIELDS)} FROM energy_slot WHERE {gw}"  # noqa: S608
            f" AND time >= {ql_time(first_slot)} AND time <= {ql_time(last_slot)}",
            f"SELECT {', '.join(ROLLUP_FIELDS)} FROM energy_hour WHERE {gw}"  # noqa: S608
            f" AND time >= {ql_time(first_day)} AND time < {ql_time(last_day)}",
            f"SELECT {', '.join(ROLLUP_FIELDS)} FROM energy_day WHERE {gw}"  # noqa: S608
            f" AND time >= {ql_time(first_month)} AND time < {ql_time(last_month)}",
            f"SELECT reason FROM register_anomaly WHERE {gw}"  # noqa: S608
            f" AND time >= {ql_time(first_slot)} AND time <= {ql_time(last_slot)} GROUP BY direction",
        ]

    def load(self, results: Sequence[list[Series]]) -> None:
        slots, hours, days, anomalies = results
        self.anomaly_keys = {(int(row["time"]), s.tags.get("direction", "")) for s in anomalies for row in s.rows}
        self.slots = {int(row["time"]): slot_of(row) for s in slots for row in s.rows}
        self.stored_hours = {int(row["time"]): rollup_of(row) for s in hours for row in s.rows}
        self.stored_days = {int(row["time"]): rollup_of(row) for s in days for row in s.rows}

    def apply(self) -> list[str]:
        lines: list[str] = []
        stored = dict(self.slots)
        incoming_ends: set[int] = set()
        for batch, outcome in self.items:
            incoming = _merge_copies(batch.energy)
            incoming_ends |= set(incoming)
            for slot_end, reading in incoming.items():
                old = self.slots.get(slot_end, StoredSlot())
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
            line = point_line("energy_slot", tags, fields, slot_end)
            if line is not None:
                lines.append(line)
        hours = dict(self.stored_hours)
        for hour in self.hours:
            hours[hour] = sum(
                (_slot_total(self.slots[end]) for end in (hour + SLOT_S, hour + rollup.HOUR_S) if end in self.slots),
                RollupTotal(),
            ).rounded()
        days = dict(self.stored_days)
        for day in self.days:
            days[day] = _sum_in(hours, day, day + rollup.DAY_S)
        months = {month: _sum_in(days, month, rollup.next_month_start(month)) for month in self.months}
        for measurement, touched, totals in (("energy_hour", self.hours, hours), ("energy_day", self.days, days),
                                             ("energy_month", self.months, months)):
            for start in sorted(touched):
                line = point_line(measurement, tags, totals[start].fields(), start)
                if line is not None:
                    lines.append(line)
        return lines

    def _derive(
        self, slot_end: int, current: StoredSlot, previous: StoredSlot | None, outcome: WriteOutcome, lines: list[str]
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
    line = point_line(
        "register_anomaly",
        {"gateway_id": anomaly.gateway_id, "direction": anomaly.direction},
        {"previous_kwh": float(anomaly.previous_kwh), "current_kwh": float(anomaly.current_kwh),
         "reason": anomaly.reason, "detected_at_us": to_micros(anomaly.detected_at)},
        slot_end,
    )
    assert line is not None
    return line


def _sum_in(totals: Mapping[int, RollupTotal], first: int, end: int) -> RollupTotal:
    return sum((t for start, t in totals.items() if first <= start < end and t.slots > 0), RollupTotal()).rounded()


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
