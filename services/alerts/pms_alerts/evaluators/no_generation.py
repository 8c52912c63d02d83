"""no_generation: the plant sells no power (sold ≤ `sold_w_max`, default 0 W) while the sky over it
gives at least `irradiance_w_m2` (default 350 W/m²).

Irradiance: the global HORIZONTAL irradiance (GHI) of the weather provider's value for the
30-minute slot containing now (period-ending: the first stored value ending at or after now), else
the newest value ending within the last hour. GHI, not plane-of-array: it is what the provider
measures or models for every plant alike and what the threshold of the Japanese portals means
(日射量); the provider's tilted irradiance is computed for one fleet-wide tilt, not the plant's
panels, so it is no better a guide to a single plant. At 350 W/m² horizontal, panels of any
orientation generate.

Not knowing is not an alarm: None (timers stay) when no current gateway of the plant has a power
reading newer than FRESH_POWER_S (meter_unreachable's business), when no weather for now is stored,
or when the stored value is the clear-sky estimate or marked stale (the provider is down: the
estimate says where the sun is, not whether clouds cover it; firing on it would raise an alarm on
every rainy day). False when the irradiance is below the threshold or power flows.

Reads: `latest_power` of every gateway in one store query a tick; the weather per plant (the store
keeps it per plant), kept per (plant, slot) for WEATHER_RECHECK_S so a tick re-reads only a few."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from pms_alerts.conditions import FleetFacts, Observation, PlantContext
from pms_alerts.evaluators.common import enabled, param, stamp
from pms_common import timeutil
from pms_common.messages import Weather
from pms_plant.bound_reads import BoundReads
from pms_registry.records import AlertRule
from pms_store import TimeSeriesStore

DEFAULT_IRRADIANCE_W_M2 = 350.0
DEFAULT_SOLD_W_MAX = 0.0
# A power reading older than this says nothing about now (gateways read every 60 s by default).
FRESH_POWER_S = 600.0
# A weather value ending this long before now no longer describes now.
WEATHER_MAX_AGE = timedelta(hours=1)
# The weather of a slot is re-read this often (a provider round may replace a forecast by fresher).
WEATHER_RECHECK_S = 300.0


def usable(weather: Weather) -> bool:
    return not weather.source.startswith("clear") and not weather.stale


class NoGeneration:
    kind = "no_generation"

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store
        self.reads = BoundReads(store)
        self._weather: dict[str, tuple[datetime, datetime, Weather | None]] = {}  # code -> (slot, read at, value)

    def weather_now(self, service_code: str, now: datetime) -> Weather | None:
        """The stored weather for the slot containing now (else the newest of the last hour)."""
        slot_end = timeutil.slot_end_at_or_before(now)
        if slot_end < now:
            slot_end += timeutil.SLOT
        kept = self._weather.get(service_code)
        if kept is not None and kept[0] == slot_end and 0 <= (now - kept[1]).total_seconds() < WEATHER_RECHECK_S:
            return kept[2]
        stored = self.store.weather_series(service_code, now - WEATHER_MAX_AGE, slot_end + timedelta(seconds=1))
        current = [w for w in stored if w.observed_at >= now]
        chosen = current[0] if current else (stored[-1] if stored else None)
        self._weather[service_code] = (slot_end, now, chosen)
        return chosen

    def observe_all(self, plants: Sequence[PlantContext], rules: Mapping[str, AlertRule],
                    now: datetime, facts: FleetFacts) -> dict[str, Observation]:
        watched = enabled(plants, rules)
        latest = self.reads.latest_power([p.plant for p in watched])
        observed: dict[str, Observation] = {}
        for context in watched:
            rule = rules[context.service_code]
            fresh = [p for p in latest.get(context.service_code, [])
                     if (now - p.measured_at).total_seconds() < FRESH_POWER_S]
            if not fresh:
                continue
            weather = self.weather_now(context.service_code, now)
            if weather is None or not usable(weather):
                continue
            threshold = param(rule, "irradiance_w_m2", DEFAULT_IRRADIANCE_W_M2)
            sold_max = param(rule, "sold_w_max", DEFAULT_SOLD_W_MAX)
            sold_w = sum(p.sold_power_w for p in fresh)
            params = {"irradiance_w_m2": round(weather.ghi_w_m2), "threshold_w_m2": threshold, "sold_w": sold_w,
                      "sold_w_max": sold_max, "for_s": rule.raise_for_s, "weather_at": stamp(weather.observed_at),
                      "weather_source": weather.source}
            holds = weather.ghi_w_m2 >= threshold and sold_w <= sold_max
            observed[context.service_code] = Observation(holds, params, gateway_id=fresh[0].gateway_id)
        if len(self._weather) > 4 * len(watched) + 100:
            codes = {p.service_code for p in watched}
            self._weather = {code: kept for code, kept in self._weather.items() if code in codes}
        return observed
