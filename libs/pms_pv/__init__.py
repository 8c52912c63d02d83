"""Expected PV yield with pvlib: what a plant should have generated under the sky it had.

    params       a plant's PV parameters and their defaults
    model        irradiance → expected AC energy per 30-minute slot (PVWatts, pvlib)
    performance  sums per hour/day/month, performance ratios, the clear-day calibration factor
"""

from pms_pv.model import IrradianceSample, SlotExpectation, expected_slots
from pms_pv.params import PvParameters, default_parameters

__all__ = ["IrradianceSample", "PvParameters", "SlotExpectation", "default_parameters", "expected_slots"]
