"""data_gap: a slot still missing window_h after its end, within lookback_days, after the gateway's
first stored slot; clears when the slot is filled (backfill)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pms_alerts.evaluators import DataGap
from pms_common import timeutil
from pms_common.messages import EnergyReading
from tests.alerts.evaluators.conftest import JST, World, facts, rule

NOW = datetime(2026, 7, 10, 12, 0, tzinfo=JST)
START = NOW - timedelta(days=9)  # a slot end: the registers start before the lookback


def test_an_old_gap_raises_a_recent_one_waits_for_the_backfill_window_and_a_filled_gap_clears(world: World) -> None:
    gapped, complete, recent, newcomer = (world.plant(g) for g in ("gw-gap", "gw-full", "gw-recent", "gw-new"))
    count = int((NOW - START) / timeutil.SLOT)  # up to the slot ending at NOW
    old_gap = frozenset(NOW - timedelta(days=2, hours=3) + timeutil.SLOT * i for i in range(3))
    world.slots("gw-gap", START, count + 1, skip=old_gap)
    world.slots("gw-full", START, count + 1)
    # Missing 10 h ago: the collector may still backfill it (26 h window) → not a gap yet.
    world.slots("gw-recent", START, count + 1, skip=frozenset({NOW - timedelta(hours=10)}))
    # A plant whose meter started reading 3 days ago is not missing the days before.
    world.slots("gw-new", NOW - timedelta(days=3), 3 * 48 + 1)
    contexts = world.contexts()
    rules = {c.service_code: rule("data_gap") for c in contexts}
    condition = DataGap(world.store)

    observed = condition.observe_all(contexts, rules, NOW, facts())

    gap = observed[gapped]
    # A missing register also leaves the slot after it without energy: 3 registers → 4 slots.
    assert gap.holds is True and gap.gateway_id == "gw-gap"
    assert gap.params["missing_slots"] == 4
    assert gap.params["first_missing"] == (NOW - timedelta(days=2, hours=3)).isoformat()
    assert gap.params["last_missing"] == (NOW - timedelta(days=2, hours=1, minutes=30)).isoformat()
    assert observed[complete].holds is False
    assert observed[recent].holds is False
    assert observed[newcomer].holds is False

    # The collector backfills the missing registers: within its cache period the verdict stands,
    # after it the gap clears.
    register = 1000.0
    filled = [EnergyReading(slot_end=slot, forward_kwh=50.0,
                            reverse_kwh=round(register + 0.5 * int((slot - START) / timeutil.SLOT + 1), 4),
                            register_wrap_kwh=100_000.0, backfilled=True) for slot in sorted(old_gap)]
    world.store.write_readings("gw-gap", power=[], energy=filled)
    assert condition.observe_all(contexts, rules, NOW + timedelta(minutes=1), facts())[gapped].holds is True
    later = NOW + timedelta(minutes=6)
    assert condition.observe_all(contexts, rules, later, facts())[gapped].holds is False


def test_a_gap_older_than_the_lookback_is_forgotten_and_slots_before_a_takeover_are_not_the_plants(
        world: World) -> None:
    old = world.plant("gw-old")
    count = int((NOW - START) / timeutil.SLOT)
    world.slots("gw-old", START, count + 1, skip=frozenset({NOW - timedelta(days=8)}))
    # gw-b takes the plant over 2 days ago; it stores only from then on (its earlier slots are elsewhere).
    taken = world.plant("gw-a")
    world.slots("gw-a", START, int(timedelta(days=7) / timeutil.SLOT) + 1)
    handover = START + timedelta(days=7)
    world.registry.bind_gateway("gw-b", taken, at=handover, replace=True)
    world.slots("gw-b", handover - timeutil.SLOT, count - int(timedelta(days=7) / timeutil.SLOT) + 2)
    contexts = world.contexts()
    rules = {c.service_code: rule("data_gap") for c in contexts}
    observed = DataGap(world.store).observe_all(contexts, rules, NOW, facts())
    assert observed[old].holds is False
    assert observed[taken].holds is False, observed[taken].params
