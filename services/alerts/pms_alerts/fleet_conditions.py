"""The conditions that follow what gateways say over MQTT: gateway_offline (from the liveness
tracker), meter_clock_skew and meter_scale_invalid (from the verdicts in their heartbeats).

Each observes a list of gateways (a plant's bound gateways, or one gateway bound to no plant):
the raise condition holds when one of them is in trouble (the first named in the event), the clear
condition when every one heard from is well, and None when none has been heard from yet.

gateway_offline with `daylight_only`: between local sunset and sunrise (the plant's position, Tokyo
for a plant without one) an offline gateway is "no data to tell" (None): nothing starts at night, a
pending episode waits for the morning, a firing one stays firing; a gateway seen online at night is
the clear condition as by day, so a gateway that was back before sunrise raises nothing at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime

from pms_alerts.conditions import FleetFacts, Observation, PlantContext
from pms_alerts.rules import params_of
from pms_common.timeutil import JST
from pms_pv.sun import TOKYO, sun_times
from pms_registry.records import AlertRule


class SunTable:
    """Sunrise and sunset per place and JST day, computed once (pvlib's SPA is not free)."""

    def __init__(self) -> None:
        self._times: dict[tuple[float, float, date], tuple[datetime, datetime]] = {}

    def is_daylight(self, latitude: float | None, longitude: float | None, at: datetime) -> bool:
        lat, lon = (TOKYO if latitude is None or longitude is None else (latitude, longitude))
        day = at.astimezone(JST).date()
        key = (round(lat, 2), round(lon, 2), day)  # 0.01° moves the sun by seconds
        if key not in self._times:
            if len(self._times) > 50_000:
                self._times.clear()
            self._times[key] = sun_times(key[0], key[1], day)
        sunrise, sunset = self._times[key]
        return sunrise <= at < sunset


def offline_observation(gateway_ids: Sequence[str], facts: FleetFacts) -> Observation | None:
    known = [g for g in gateway_ids if g in facts.online]
    if not known:
        return None
    offline = [g for g in known if not facts.online[g]]
    if not offline:
        return Observation(False, {"gateway_id": known[0]}, gateway_id=known[0])
    gateway_id = offline[0]
    params = {"gateway_id": gateway_id, "reason": facts.offline_reasons.get(gateway_id, "offline")}
    return Observation(True, params, gateway_id=gateway_id)


def skew_observation(gateway_ids: Sequence[str], facts: FleetFacts) -> Observation | None:
    judged = [(g, facts.heartbeats[g]) for g in gateway_ids
              if g in facts.heartbeats and facts.heartbeats[g].meter_clock_skew_s is not None]
    if not judged:
        return None
    for gateway_id, beat in judged:
        if beat.meter_clock_skewed_since is not None and beat.meter_clock_skew_s is not None:
            return Observation(True, {"gateway_id": gateway_id, "skew_s": round(beat.meter_clock_skew_s, 1)},
                               gateway_id=gateway_id)
    return Observation(False, {"gateway_id": judged[0][0]}, gateway_id=judged[0][0])


def scale_observation(gateway_ids: Sequence[str], facts: FleetFacts) -> Observation | None:
    heard = [(g, facts.heartbeats[g]) for g in gateway_ids if g in facts.heartbeats]
    if not heard:
        return None
    for gateway_id, beat in heard:
        if beat.meter_scale_problem is not None:
            return Observation(True, {"gateway_id": gateway_id, "problem": beat.meter_scale_problem},
                               gateway_id=gateway_id)
    return Observation(False, {"gateway_id": heard[0][0]}, gateway_id=heard[0][0])


class GatewayOffline:
    kind = "gateway_offline"

    def __init__(self) -> None:
        self.sun = SunTable()

    def observe_gateways(self, gateway_ids: Sequence[str], rule: AlertRule, now: datetime, facts: FleetFacts,
                         *, latitude: float | None = None, longitude: float | None = None) -> Observation | None:
        observation = offline_observation(gateway_ids, facts)
        if (observation is not None and observation.holds and params_of(rule).get("daylight_only")
                and not self.sun.is_daylight(latitude, longitude, now)):
            return None
        return observation

    def observe_all(self, plants: Sequence[PlantContext], rules: Mapping[str, AlertRule],
                    now: datetime, facts: FleetFacts) -> dict[str, Observation]:
        found: dict[str, Observation] = {}
        for plant in plants:
            rule = rules.get(plant.service_code)
            if rule is None:
                continue
            observation = self.observe_gateways(plant.gateway_ids, rule, now, facts, latitude=plant.latitude,
                                                longitude=plant.longitude)
            if observation is not None:
                found[plant.service_code] = observation
        return found


class MeterClockSkew:
    kind = "meter_clock_skew"

    def observe_gateways(self, gateway_ids: Sequence[str], rule: AlertRule, now: datetime,
                         facts: FleetFacts) -> Observation | None:
        return skew_observation(gateway_ids, facts)

    def observe_all(self, plants: Sequence[PlantContext], rules: Mapping[str, AlertRule],
                    now: datetime, facts: FleetFacts) -> dict[str, Observation]:
        return _each(plants, rules, facts, skew_observation)


class MeterScaleInvalid:
    kind = "meter_scale_invalid"

    def observe_gateways(self, gateway_ids: Sequence[str], rule: AlertRule, now: datetime,
                         facts: FleetFacts) -> Observation | None:
        return scale_observation(gateway_ids, facts)

    def observe_all(self, plants: Sequence[PlantContext], rules: Mapping[str, AlertRule],
                    now: datetime, facts: FleetFacts) -> dict[str, Observation]:
        return _each(plants, rules, facts, scale_observation)


def _each(plants: Sequence[PlantContext], rules: Mapping[str, AlertRule], facts: FleetFacts,
          observe: Callable[[Sequence[str], FleetFacts], Observation | None]) -> dict[str, Observation]:
    found: dict[str, Observation] = {}
    for plant in plants:
        if plant.service_code in rules:
            observation = observe(plant.gateway_ids, facts)
            if observation is not None:
                found[plant.service_code] = observation
    return found
