"""Acceptance 1: a simulated week at speed, with meter, broker, ingest and collector faults."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest

from tests.collector.soak import run_soak


@pytest.mark.integration
def test_a_faulty_week_stores_every_slot_exactly_once(tmp_path: Path) -> None:
    result = run_soak(tmp_path, days=7, speed=6000, gateway_id=f"gw-soak-{uuid.uuid4().hex[:8]}")
    assert not result.missing, f"missing slots {result.missing[:5]}...; timeline: {result.timeline}"
    assert len(result.slots_stored) == len(set(result.slots_stored)) == 7 * 48
    assert result.backfilled > 0, "the outages should have been refilled from E2/E4"
    for day, sold, d_reverse, bought, d_forward in result.days:
        assert math.isclose(sold, d_reverse, abs_tol=1e-6), f"{day}: sold {sold} != register delta {d_reverse}"
        assert math.isclose(bought, d_forward, abs_tol=1e-6), f"{day}: bought {bought} != register delta {d_forward}"
