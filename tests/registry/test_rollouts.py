"""Rollouts in the registry: members and groups fixed at creation, state transitions, reports; on
SQLite files and on the real PostgreSQL (127.0.0.1:5432, a scratch database per test)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pms_registry.registry import Registry, RegistryError
from pms_registry.rollouts import RolloutConflict, RolloutStateError, group_bounds
from tests.registry.v1_fixture import T0

SETTINGS = {"success_threshold": 0.9, "error_threshold": 0.1, "error_action": "pause", "min_group_size": 2,
            "deadline_s": 60.0, "health_timeout_s": 30.0, "window": "any"}


@pytest.fixture
def registry(registry: Registry) -> Registry:
    """tests/registry/conftest.py's registry (SQLite, PostgreSQL) with a plant of 15 bound gateways
    of 20, every other one tagged "odd"."""
    registry.ensure_customer("c1", "Customer 1")
    code = registry.create_plant(customer_id="c1", name="P", address="A", phone="0", created_at=T0,
                                 latitude=35.0, longitude=139.0)
    for number in range(20):
        gateway_id = f"gw-{number:02d}"
        registry.record_gateway_status(gateway_id, "online", T0)
        if number < 15:
            registry.bind_gateway(gateway_id, code, at=T0)
        if number % 2:
            registry.set_gateway_tags(gateway_id, ["odd"])
    return registry


def test_groups_are_cumulative_percents_and_the_last_takes_the_rest() -> None:
    assert group_bounds(200, [1, 10, 100]) == [2, 20, 200]
    assert group_bounds(200, [5, 50]) == [10, 200]
    assert group_bounds(3, [1, 2, 50, 100]) == [1, 2, 3, 3]  # one each while members remain


def test_targets_resolve_to_customers_tags_and_lists(registry: Registry) -> None:
    assert len(registry.rollout_target_gateways({"customer": "c1"})) == 15
    assert registry.rollout_target_gateways({"tag": "odd"}) == [f"gw-{n:02d}" for n in range(1, 20, 2)]
    assert registry.rollout_target_gateways({"gateways": ["gw-03", "gw-01"]}) == ["gw-01", "gw-03"]
    with pytest.raises(RegistryError, match="unknown"):
        registry.rollout_target_gateways({"gateways": ["gw-99"]})
    with pytest.raises(RegistryError, match="target must be"):
        registry.rollout_target_gateways({"plant": "x"})


def test_creation_assigns_every_member_a_group_deterministically(registry: Registry) -> None:
    rollout = registry.create_rollout(image_sha256="a" * 64, version="2.0", target={"customer": "c1"},
                                      group_sizes=[10, 50, 100], created_by="admin", at=T0, **SETTINGS)
    assert rollout.rollout_id.startswith("ro-") and len(rollout.rollout_id) == 11
    assert (rollout.state, rollout.current_group) == ("running", 0)
    groups = registry.rollout_groups(rollout.rollout_id)
    assert [(g.total, g.started, g.counts) for g in groups] == [
        (2, True, {"pending": 2}), (6, False, {"pending": 6}), (7, False, {"pending": 7})]
    members = registry.rollout_gateways(rollout.rollout_id)
    assert [m.job_id for m in members] == [f"{rollout.rollout_id}.{m.gateway_id}" for m in members]
    registry.set_rollout_state(rollout.rollout_id, "cancelled", None, T0)  # its members are still pending
    again = registry.create_rollout(image_sha256="a" * 64, version="2.0", target={"customer": "c1"},
                                    group_sizes=[10, 50, 100], created_by="admin", at=T0,
                                    rollout_id=rollout.rollout_id.replace("ro-", "rx-"), **SETTINGS)
    assert {m.gateway_id for m in registry.rollout_gateways(again.rollout_id)} == {m.gateway_id for m in members}
    with pytest.raises(RolloutConflict, match="under way in another rollout"):
        registry.create_rollout(image_sha256="a" * 64, version="2.0", target={"gateways": ["gw-01"]},
                                group_sizes=[100], created_by="admin", at=T0, **SETTINGS)
    assert registry.rollout_gateway_locations(rollout.rollout_id)[members[0].gateway_id] == (35.0, 139.0)


def test_bad_settings_are_refused_with_the_field_named(registry: Registry) -> None:
    for change, field in (({"success_threshold": 1.5}, "success_threshold"), ({"min_group_size": 0}, "min_group_size"),
                          ({"window": "noon"}, "window"), ({"error_action": "panic"}, "error_action"),
                          ({"deadline_s": 0}, "deadline_s")):
        with pytest.raises(RegistryError, match=field):
            registry.create_rollout(image_sha256="a" * 64, version="2", target={"customer": "c1"},
                                    group_sizes=[100], created_by="x", at=T0, **{**SETTINGS, **change})
    with pytest.raises(RegistryError, match="groups"):
        registry.create_rollout(image_sha256="a" * 64, version="2", target={"customer": "c1"},
                                group_sizes=[50, 10], created_by="x", at=T0, **SETTINGS)


def test_state_transitions_and_resume_accepts_errors_so_far(registry: Registry) -> None:
    rollout = registry.create_rollout(image_sha256="a" * 64, version="2", target={"tag": "odd"},
                                      group_sizes=[50, 100], created_by="x", at=T0, **SETTINGS)
    rid = rollout.rollout_id
    member = registry.rollout_gateways(rid, 0)[0]
    assert registry.mark_rollout_job_sent(rid, member.gateway_id, T0, T0 + timedelta(seconds=60))
    assert not registry.mark_rollout_job_sent(rid, member.gateway_id, T0, T0 + timedelta(seconds=60))
    at = T0 + timedelta(seconds=5)
    report = {"gateway_id": member.gateway_id, "job_id": member.job_id, "version": "1", "reason": None}
    assert registry.record_update_report(state="downloading", at=at, **report) == "recorded"
    assert registry.record_update_report(state="downloading", at=at, **report) == "unchanged"
    assert registry.record_update_report(**{**report, "gateway_id": "gw-00"}, state="failed", at=at) == "unknown"
    assert registry.record_update_report(state="rolled_back", at=at, **{**report, "reason": "no readings"}) == "recorded"
    assert registry.record_update_report(state="committed", at=at, **report) == "closed"
    found = registry.rollout_gateway(rid, member.gateway_id)
    assert found is not None and (found.state, found.from_version, found.reason) == ("rolled_back", "1", "no readings")
    paused = registry.set_rollout_state(rid, "paused", "error threshold", at)
    assert paused is not None and paused.state_reason == "error threshold"
    with pytest.raises(RolloutStateError):
        registry.set_rollout_state(rid, "paused", None, at)
    resumed = registry.set_rollout_state(rid, "running", None, at)
    assert resumed is not None and resumed.errors_accepted == 1
    assert registry.advance_group(rid, 1, at) and not registry.advance_group(rid, 1, at)
    assert registry.set_rollout_state("ro-00000000", "paused", None, at) is None
    cancelled = registry.set_rollout_state(rid, "cancelled", "by admin", at)
    assert cancelled is not None and cancelled.state == "cancelled"
    assert [r.rollout_id for r in registry.rollouts_to_drive()] == [rid]  # members still pending
    with pytest.raises(RolloutStateError):
        registry.set_rollout_state(rid, "running", None, at)
