"""no_generation: no sold power while the plant's irradiance (the provider's GHI for the slot holding
now) is at or above the threshold; None without fresh power or usable weather."""

from __future__ import annotations

from datetime import datetime, timedelta

from pms_alerts.conditions import Observation
from pms_alerts.engine import AlertKey, step
from pms_alerts.evaluators import NoGeneration
from pms_common import timeutil
from tests.alerts.evaluators.conftest import JST, World, facts, rule

NOON = datetime(2026, 7, 10, 12, 0, tzinfo=JST)


def test_sunny_without_sale_raises_cloud_or_sale_clears_unknown_sky_or_power_tells_nothing(world: World) -> None:
    dead, selling, cloudy, estimated, stale, no_weather, no_power = (
        world.plant(g) for g in ("gw-dead", "gw-sell", "gw-cloud", "gw-est", "gw-stale", "gw-nowx", "gw-nopw"))
    slot = NOON + timeutil.SLOT  # the slot holding 12:10 ends 12:30
    now = NOON + timedelta(minutes=10)
    for code in (dead, selling, no_power):
        world.weather(code, slot, 780.0)
    world.weather(cloudy, slot, 180.0)
    world.weather(estimated, slot, 850.0, source="clear_sky")
    world.weather(stale, slot, 850.0, stale=True)
    for gateway_id, power_w in (("gw-dead", 0), ("gw-sell", -4200), ("gw-cloud", 0), ("gw-est", 0),
                                ("gw-stale", 0), ("gw-nowx", 0)):
        world.power(gateway_id, now - timedelta(seconds=40), power_w)
    world.power("gw-nopw", now - timedelta(minutes=40), 0)
    contexts = world.contexts()
    rules = {c.service_code: rule("no_generation") for c in contexts}

    observed = NoGeneration(world.store).observe_all(contexts, rules, now, facts())

    assert observed[dead].holds is True
    assert {k: observed[dead].params[k] for k in ("irradiance_w_m2", "threshold_w_m2", "sold_w", "for_s")} == {
        "irradiance_w_m2": 780, "threshold_w_m2": 350.0, "sold_w": 0, "for_s": 1800}
    assert observed[dead].gateway_id == "gw-dead"
    assert observed[selling].holds is False and observed[selling].params["sold_w"] == 4200
    assert observed[cloudy].holds is False
    for unknown in (estimated, stale, no_weather, no_power):
        assert unknown not in observed


def test_a_plant_dropping_to_zero_at_noon_is_flagged_within_the_rules_duration(world: World) -> None:
    """Issue 14 item 3, at the condition's level: a sunny day, a reading a minute, the output falls to
    0 at 12:00; each minute's observation is what the engine times with raise_for_s (1800 s)."""
    code = world.plant("gw-1")
    for i in range(-2, 6):  # the provider's slots 11:00..14:30, 820 W/m²
        world.weather(code, NOON + timeutil.SLOT * i, 820.0)
    condition = NoGeneration(world.store)
    the_rule = rule("no_generation")
    held_since: datetime | None = None
    raised_at: datetime | None = None
    verdicts: list[Observation] = []
    moment = NOON - timedelta(minutes=30)
    while moment <= NOON + timedelta(hours=1):
        world.power("gw-1", moment, -5200 if moment < NOON else 0)
        observation = condition.observe_all(world.contexts(), {code: the_rule}, moment + timedelta(seconds=5),
                                            facts())[code]
        verdicts.append(observation)
        if observation.holds:
            held_since = held_since or moment
            if raised_at is None and (moment - held_since).total_seconds() >= the_rule.raise_for_s:
                raised_at = moment
        else:
            held_since = None
        moment += timedelta(minutes=1)
    assert all(v.holds is False for v in verdicts[:30])  # selling before noon
    assert held_since == NOON  # the first reading of 0 W
    assert raised_at == NOON + timedelta(seconds=the_rule.raise_for_s)


def test_the_engine_raises_a_noon_drop_after_raise_for_and_clears_it_after_clear_for(world: World) -> None:
    """Issue 14 item 3 through the episode engine (pms_alerts.engine): output 0 from 12:00 to 13:00 under 820 W/m², a reading and an evaluation a minute, the shipped
    rule (30 min to raise, 15 min to clear)."""
    code = world.plant("gw-1")
    for i in range(-2, 8):
        world.weather(code, NOON + timeutil.SLOT * i, 820.0)
    condition = NoGeneration(world.store)
    the_rule = rule("no_generation")
    key = AlertKey(kind="no_generation", subject=code, service_code=code, gateway_id="gw-1")
    record = None
    decisions: list[tuple[str, datetime]] = []
    moment = NOON - timedelta(minutes=30)
    while moment <= NOON + timedelta(hours=2):
        world.power("gw-1", moment, 0 if NOON <= moment < NOON + timedelta(hours=1) else -5200)
        observation = condition.observe_all(world.contexts(), {code: the_rule}, moment, facts())[code]
        result = step(record, the_rule, observation, key=key, inhibited=False, now=moment)
        record = result.record
        if result.decision in ("raise", "clear"):
            decisions.append((result.decision, moment))
            if result.decision == "raise":
                assert result.params["irradiance_w_m2"] == 820 and result.params["sold_w"] == 0
        moment += timedelta(minutes=1)
    assert decisions == [("raise", NOON + timedelta(minutes=30)), ("clear", NOON + timedelta(minutes=75))]
