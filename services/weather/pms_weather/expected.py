"""Each plant's expected energy for the slots whose weather a round published, as `ExpectedYield`
messages on `pms/v1/plants/{service_code}/expected` (ingest stores them where Grafana reads them).

The weather service computes it because it holds every input at the moment the weather changes: the
plants and their PV parameters (registry) and the weather series it has just published, which is
what the store will hold. It runs the API's code (pms_plant.expected: `resolved_parameters`,
`irradiance_of`, then pms_pv's `expected_slots`), so for the same stored weather, parameters and
calibration the figures are the API's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pms_common.messages import ExpectedSlot, ExpectedYield, Weather
from pms_plant.expected import irradiance_of, resolved_parameters
from pms_pv import expected_slots
from pms_registry.pv import PlantPv
from pms_registry.records import Plant


def expected_yields(plants: Mapping[str, Plant], entered: Mapping[str, PlantPv],
                    series: Mapping[str, Sequence[Weather]], published: Sequence[Weather],
                    now: datetime) -> list[ExpectedYield]:
    """One message per plant with published weather: the expected energy of those slots.

    `series` is each plant's whole fetched weather (the samples the model reads, as the API reads
    the store's); `entered` the plants' PV parameters as entered (absent: never edited)."""
    ends: dict[str, set[datetime]] = {}
    for weather in published:
        ends.setdefault(weather.service_code, set()).add(weather.observed_at)
    out = []
    for code, slot_ends in sorted(ends.items()):
        plant = plants.get(code)
        if plant is None or plant.latitude is None or plant.longitude is None:
            continue
        params, _ = resolved_parameters(plant, entered.get(code) or PlantPv(service_code=code))
        samples = [s for s in (irradiance_of(w) for w in series.get(code, ())) if s is not None]
        slots = expected_slots(plant.latitude, plant.longitude, params, sorted(slot_ends), samples)
        out.append(ExpectedYield(
            service_code=code, computed_at=now, calibration=params.calibration,
            slots=[ExpectedSlot(slot_end=s.slot_end, expected_kwh=s.expected_kwh, source=s.source) for s in slots]))
    return out
