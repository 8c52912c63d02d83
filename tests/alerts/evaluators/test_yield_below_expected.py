"""yield_below_expected: sold below a share of the calibrated expectation on each of the last N JST
days; issue 14 item 3 (30 % shading flagged before calibration absorbs it, not after)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from pms_alerts.conditions import Observation
from pms_alerts.evaluators import YieldBelowExpected
from pms_common import timeutil
from pms_plant.expected import PlantExpectations
from pms_pv import default_parameters, expected_slots
from tests.alerts.evaluators.conftest import JST, World, facts, rule

LAT, LON = 35.68, 139.77


def sell(world: World, gateway_id: str, first: date, days: int, share: Callable[[date], float]) -> None:
    """Registers from `first` for `days` days (and the 00:00 slot closing the last): each slot sells
    share(day) of the plant's clear-sky expectation (10 kW, default parameters)."""
    start = timeutil.day_start(first)
    ends = [start + timeutil.SLOT * i for i in range(days * 48 + 1)]
    expected = {s.slot_end: s.expected_kwh for s in expected_slots(LAT, LON, default_parameters(10.0), ends, [])}
    world.slots(gateway_id, start, len(ends),
                lambda slot_end: expected[slot_end] * share(timeutil.jst_day_of_slot(slot_end)))


def observe(world: World, condition: YieldBelowExpected, code: str, now: datetime, **params: float) -> Observation:
    found = condition.observe_all(world.contexts(), {code: rule("yield_below_expected", **params)}, now, facts())
    return found[code]


def test_thirty_percent_shading_is_flagged_before_calibration_absorbs_it_and_not_after(world: World) -> None:
    code = world.plant("gw-shaded")
    today = date(2026, 7, 20)
    first = today - timedelta(days=60)
    # Shaded: 70 % of the clear-sky model on clear days; every 4th day overcast (a third of that);
    # the last three days are clear.
    sell(world, "gw-shaded", first, 60, lambda day: 0.7 / 3 if (day - first).days % 4 == 0 else 0.7)
    now = datetime(2026, 7, 20, 8, 0, tzinfo=JST)

    # The shipped rule (share 0.8, 3 days) sees it.
    before = observe(world, YieldBelowExpected(world.registry, world.store), code, now)
    assert before.holds is True
    assert before.params["share"] == 0.7 and before.params["threshold_share"] == 0.8
    assert before.params["days"] == 3 and before.params["actual_kwh"] > 0

    factor, clear_days = PlantExpectations(world.registry, world.store).calibrate(world.registry.get_plant(code), now)  # type: ignore[arg-type]
    assert factor is not None and abs(factor - 0.7) < 0.02 and clear_days >= 3

    after = observe(world, YieldBelowExpected(world.registry, world.store), code, now)
    assert after.holds is False
    assert abs(after.params["share"] - 1.0) < 0.03


def test_the_verdict_turns_at_jst_midnight_and_a_gap_or_missing_history_tells_nothing(world: World) -> None:
    broken = world.plant("gw-broken")
    gappy = world.plant("gw-gappy")
    first = date(2026, 7, 1)
    drop = date(2026, 7, 4)  # from this day on the plant sells 30 %
    sell(world, "gw-broken", first, 6, lambda day: 1.0 if day < drop else 0.3)
    # gw-gappy sells 30 % too, but its registers of July 5 from 09:00 on are missing.
    skip = frozenset(timeutil.day_start(date(2026, 7, 5)) + timedelta(hours=9) + timeutil.SLOT * i for i in range(20))
    start = timeutil.day_start(first)
    ends = [start + timeutil.SLOT * i for i in range(6 * 48 + 1)]
    expected = {s.slot_end: s.expected_kwh for s in expected_slots(LAT, LON, default_parameters(10.0), ends, [])}
    world.slots("gw-gappy", start, len(ends), lambda s: expected[s] * 0.3, skip=skip)
    condition = YieldBelowExpected(world.registry, world.store)

    late = datetime(2026, 7, 6, 23, 50, tzinfo=JST)  # last complete day: July 5 → days 3, 4, 5
    assert observe(world, condition, broken, late).holds is False
    early = datetime(2026, 7, 7, 0, 10, tzinfo=JST)  # last complete day: July 6 → days 4, 5, 6
    verdict = observe(world, condition, broken, early)
    assert verdict.holds is True
    assert verdict.params["first_day"] == "2026-07-04" and verdict.params["last_day"] == "2026-07-06"
    assert abs(verdict.params["share"] - 0.3) < 0.01
    # July 5 lacks most of its daylight slots: it tells nothing, so the plant's verdict is None.
    assert observe(world, condition, gappy, early).holds is None

    newcomer = world.plant("gw-new", bound_at=datetime(2026, 7, 5, 10, 0, tzinfo=JST))
    sell(world, "gw-new", date(2026, 7, 5), 2, lambda day: 0.3)
    # Its first binding reads its whole history: two days known, the third (July 4) is empty → None.
    assert observe(world, condition, newcomer, early).holds is None
