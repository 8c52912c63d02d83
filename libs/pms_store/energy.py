"""Slot energy from consecutive cumulative registers, the one place this rule lives.

A register that wraps (passes 10^D7 × unit) continues from zero; a register that goes backwards
for any other reason (meter replaced, a glitch to 0) is an anomaly: it yields no energy, never a
negative or a huge figure. So is a register that jumps by more than one slot can hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pms_common import timeutil
from pms_store.base import AnomalyDirection, AnomalyReason, RegisterAnomaly

# A wrap is only believed when the register was near its end: within this share of the range.
_WRAP_WINDOW = 0.1
# One 30-minute slot of a low-voltage contract cannot plausibly exceed this (50 kVA for 30 min).
MAX_SLOT_KWH = 25.0


def anomaly_text(reason: AnomalyReason, previous: float, current: float) -> str:
    if reason == "jump":
        return f"register jumped by {current - previous:.3f} kWh in one slot"
    return f"register went backwards from {previous:.3f} to {current:.3f} kWh"


@dataclass(frozen=True)
class SlotDelta:
    kwh: float | None
    anomaly: str | None = None
    reason: AnomalyReason | None = None


def slot_delta(previous: float, current: float, wrap_kwh: float | None) -> SlotDelta:
    delta = current - previous
    if delta >= 0:
        if delta > MAX_SLOT_KWH:
            return SlotDelta(None, anomaly_text("jump", previous, current), "jump")
        return SlotDelta(round(delta, 6))
    if wrap_kwh is not None and previous >= wrap_kwh * (1 - _WRAP_WINDOW):
        wrapped = current + wrap_kwh - previous
        if 0 <= wrapped <= MAX_SLOT_KWH:
            return SlotDelta(round(wrapped, 6))
    return SlotDelta(None, anomaly_text("backwards", previous, current), "backwards")


@dataclass(frozen=True)
class SlotAnomaly:
    """An anomaly found deriving one register of one slot, before a store names its gateway and time."""

    direction: AnomalyDirection
    previous_kwh: float
    current_kwh: float
    reason: AnomalyReason


def derive_slot(
    previous: tuple[float | None, float | None],
    current: tuple[float | None, float | None],
    wrap_kwh: float | None,
) -> tuple[float | None, float | None, list[SlotAnomaly]]:
    """A slot's (bought, sold) energy and anomalies from the (forward, reverse) registers of the
    slot before it and of itself; both stores derive through this one function."""
    energies: list[float | None] = []
    anomalies = []
    registers: tuple[tuple[AnomalyDirection, float | None, float | None], ...] = (
        ("forward", previous[0], current[0]), ("reverse", previous[1], current[1]),
    )
    for direction, before, now in registers:
        if before is None or now is None:
            energies.append(None)
            continue
        delta = slot_delta(before, now, wrap_kwh)
        energies.append(delta.kwh)
        if delta.reason is not None:
            anomalies.append(SlotAnomaly(direction, before, now, delta.reason))
    return energies[0], energies[1], anomalies


def describe(anomaly: RegisterAnomaly) -> str:
    """The text a write reports (ingest logs it): which register, which slot, what happened."""
    return (
        f"{anomaly.direction} register at slot {anomaly.slot_end.isoformat()}: "
        f"{anomaly_text(anomaly.reason, anomaly.previous_kwh, anomaly.current_kwh)}"
    )


def anomalies_of_slot(
    gateway_id: str, slot_end: datetime, found: list[SlotAnomaly], detected_at: datetime
) -> list[RegisterAnomaly]:
    return [
        RegisterAnomaly(gateway_id, slot_end, a.direction, a.previous_kwh, a.current_kwh, a.reason, detected_at)
        for a in found
    ]


# Detection times are kept to the microsecond (as the registry keeps event times) in an integer:
# a float epoch would not round-trip them exactly.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    delta = timeutil.require_aware(moment) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return (_EPOCH + timedelta(microseconds=micros)).astimezone(timeutil.JST)
