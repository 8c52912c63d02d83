"""A plant's PV parameters, with the defaults of a typical Japanese low-voltage plant."""

from __future__ import annotations

from dataclasses import dataclass

# When nothing is known: a small plant, south-facing, at the tilt common on Japanese racks and roofs.
DEFAULT_DC_KW = 10.0
# Japanese low-voltage plants are typically over-paneled: ~1.2 DC per AC (e.g. 59.4 kW of panels on
# 49.5 kW of power conditioners), so the AC limit defaults to DC / 1.2.
DEFAULT_DC_AC_RATIO = 1.2
DEFAULT_TILT_DEG = 20.0
DEFAULT_AZIMUTH_DEG = 180.0  # pvlib's convention: 0 = north, 90 = east, 180 = south
DEFAULT_SYSTEM_LOSS_PCT = 14.0  # PVWatts' default total loss (soiling, wiring, mismatch, ...)
DEFAULT_GAMMA_PCT_PER_C = -0.4  # crystalline silicon
# The calibration factor is bounded: below 0.5 something is broken (an alarm, not a calibration);
# above 1.1 the model is wrong, not the plant.
CALIBRATION_MIN = 0.5
CALIBRATION_MAX = 1.1


@dataclass(frozen=True)
class PvParameters:
    dc_kw: float
    ac_kw: float
    tilt_deg: float
    azimuth_deg: float
    system_loss_pct: float
    gamma_pct_per_c: float
    calibration: float = 1.0  # learned from clear days; multiplies every expected value


def default_parameters(capacity_kw: float | None) -> PvParameters:
    """Defaults for a plant whose PV parameters were never entered: DC = its registered capacity."""
    dc = capacity_kw if capacity_kw is not None and capacity_kw > 0 else DEFAULT_DC_KW
    return PvParameters(dc_kw=dc, ac_kw=round(dc / DEFAULT_DC_AC_RATIO, 3), tilt_deg=DEFAULT_TILT_DEG,
                        azimuth_deg=DEFAULT_AZIMUTH_DEG, system_loss_pct=DEFAULT_SYSTEM_LOSS_PCT,
                        gamma_pct_per_c=DEFAULT_GAMMA_PCT_PER_C)
