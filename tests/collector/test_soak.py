"""Acceptance: a simulated week at speed, with meter, broker, ingest and collector faults."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest

from tests.collector.soak import METER_EVENTS, run_soak


@pytest.mark.integration
@pytest.mark.slow  # about two minutes: CI runs it (CI=true make test); a developer's make test leaves it out
def test_a_faulty_week_stores_every_slot_exactly_once(tmp_path: Path) -> None:
    result = run_soak(tmp_path, days=7, speed=6000, gateway_id=f"gw-soak-{uuid.uuid4().hex[:8]}")
    assert not result.missing, f"missing slots {result.missing[:5]}...; timeline: {result.timeline}"
    assert len(result.slots_stored) == len(set(result.slots_stored)) == 7 * 48
    assert result.backfilled > 0, "the outages should have been refilled from E2/E4"
    for day, sold, d_reverse, bought, d_forward in result.days:
        assert math.isclose(sold, d_reverse, abs_tol=1e-6), f"{day}: sold {sold} != register delta {d_reverse}"
        assert math.isclose(bought, d_forward, abs_tol=1e-6), f"{day}: bought {bought} != register delta {d_forward}"
    # No slot from a bad scale, nor from the history that disagreed: every one is the meter's own.
    assert not result.wrong_slots, f"slots unlike the meter's: {result.wrong_slots[:5]}; {result.timeline}"
    # Power goes on at its interval through the meter's faults; only the collector's kill and the
    # meter's link faults pause it.
    gaps = result.power_gaps(longer_than=3 * result.power_interval)
    assert len(result.power_times) > 0.5 * 7 * 86400 / result.power_interval.total_seconds()
    assert not gaps, f"power paused {[(a.strftime('%a %H:%M'), b.strftime('%a %H:%M')) for a, b in gaps]}; " \
                     f"{result.timeline}"
    # Each meter fault is one event of the gateway, and an episode has recovered.
    kinds = [kind for kind, _ in result.events]
    assert sorted(kinds) == sorted(METER_EVENTS), f"meter events {result.events}; {result.timeline}"
    for kind, state in result.events:
        assert state == ("recovered" if METER_EVENTS[kind] else "info"), (kind, state)
