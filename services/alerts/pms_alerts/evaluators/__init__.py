"""The alert conditions that read the data (issue 13), each a `pms_alerts.conditions.Condition`:

    meter_unreachable     online gateway, no power reading stored for a while (store: latest power)
    no_generation         no sold power under the plant's irradiance ≥ threshold (store: power, weather)
    yield_below_expected  sold < share of the calibrated expectation for N days (pms_plant.expected)
    data_gap              a slot still missing after the backfill window (store: day rollups, slots)
    update_failed         the last software-update report failed or rolled back (MQTT facts only)

They read the store and the registry, so they are built with them: `conditions(registry, store)`.
"""

from __future__ import annotations

from pms_alerts.conditions import Condition
from pms_alerts.evaluators.data_gap import DataGap
from pms_alerts.evaluators.meter_unreachable import MeterUnreachable
from pms_alerts.evaluators.no_generation import NoGeneration
from pms_alerts.evaluators.update_failed import UpdateFailed
from pms_alerts.evaluators.yield_below_expected import YieldBelowExpected
from pms_registry.registry import Registry
from pms_store import TimeSeriesStore

KINDS = ("meter_unreachable", "no_generation", "yield_below_expected", "data_gap", "update_failed")


def conditions(registry: Registry, store: TimeSeriesStore | None) -> tuple[Condition, ...]:
    """This package's conditions, in KINDS order; without a store only those that need none."""
    if store is None:
        return (UpdateFailed(),)
    return (MeterUnreachable(store), NoGeneration(store), YieldBelowExpected(registry, store), DataGap(store),
            UpdateFailed())


__all__ = ["KINDS", "DataGap", "MeterUnreachable", "NoGeneration", "UpdateFailed", "YieldBelowExpected",
           "conditions"]


def __getattr__(name: str) -> object:
    # The brief named a module-level ALL; these conditions need the store and the registry, so there
    # is none: say so where a caller looks for it.
    if name == "ALL":
        raise AttributeError("pms_alerts.evaluators has no ALL: its conditions read the store and the registry, "
                             "build them with pms_alerts.evaluators.conditions(registry, store)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
