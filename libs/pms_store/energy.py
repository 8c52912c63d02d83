"""Slot energy from consecutive cumulative registers, the one place this rule lives.

A register that wraps (passes 10^D7 × unit) continues from zero; a register that goes backwards
for any other reason (meter replaced, a glitch to 0) is an anomaly: it yields no energy, never a
negative or a huge figure.
"""

from __future__ import annotations

from dataclasses import dataclass

# A wrap is only believed when the register was near its end: within this share of the range.
_WRAP_WINDOW = 0.1
# One 30-minute slot of a low-voltage contract cannot plausibly exceed this (50 kVA for 30 min).
MAX_SLOT_KWH = 25.0


@dataclass(frozen=True)
class SlotDelta:
    kwh: float | None
    anomaly: str | None = None


def slot_delta(previous: float, current: float, wrap_kwh: float | None) -> SlotDelta:
    delta = current - previous
    if delta >= 0:
        if delta > MAX_SLOT_KWH:
            return SlotDelta(None, f"register jumped by {delta:.3f} kWh in one slot")
        return SlotDelta(round(delta, 6))
    if wrap_kwh is not None and previous >= wrap_kwh * (1 - _WRAP_WINDOW):
        wrapped = current + wrap_kwh - previous
        if 0 <= wrapped <= MAX_SLOT_KWH:
            return SlotDelta(round(wrapped, 6))
    return SlotDelta(None, f"register went backwards from {previous:.3f} to {current:.3f} kWh")
