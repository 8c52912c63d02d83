"""The launcher's boot decision and the slot state (sans-IO), and the state file's atomic writes."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pms_collector import update_state as us
from pms_collector.update_slots import SlotRoot, write_atomically


def _trial_state(noon: datetime, timeout_s: float = 300.0) -> us.SlotState:
    state = us.begin_install(us.factory_state("0.1.0"), "r1.gw-1", "0.2.0")
    return us.start_trial(state, version="0.2.0", now=noon, health_timeout_s=timeout_s, restart_allowance_s=60)


def test_a_fresh_root_boots_slot_a_and_counts_no_boot(noon: datetime) -> None:
    decision = us.decide_boot(us.factory_state("0.1.0"), noon)
    assert (decision.slot, decision.version, decision.trial, decision.rolled_back) == ("a", "0.1.0", False, None)
    assert decision.state == us.factory_state("0.1.0")


def test_an_install_goes_to_the_inactive_slot_and_boots_it_on_trial(noon: datetime) -> None:
    state = _trial_state(noon)
    assert state.installing is None
    assert state.trial is not None and state.trial.slot == "b"
    assert state.trial.health_deadline == noon + timedelta(seconds=360)
    decision = us.decide_boot(state, noon + timedelta(seconds=5))
    assert (decision.slot, decision.version, decision.trial) == ("b", "0.2.0", True)
    assert decision.state.trial is not None and decision.state.trial.boots == 1


def test_a_crash_loop_rolls_back_after_three_boots(noon: datetime) -> None:
    state = _trial_state(noon)
    slots = []
    for _ in range(4):
        decision = us.decide_boot(state, noon + timedelta(seconds=10))
        slots.append(decision.slot)
        state = decision.state
    assert slots == ["b", "b", "b", "a"]
    assert decision.rolled_back == "crash loop: 3 boots without a healthy start"
    assert state.trial is None and state.committed_slot == "a"
    assert state.last_outcome is not None
    assert (state.last_outcome.state, state.last_outcome.version, state.last_outcome.target_version) == (
        "rolled_back", "0.1.0", "0.2.0")


def test_a_trial_past_its_health_deadline_rolls_back(noon: datetime) -> None:
    decision = us.decide_boot(_trial_state(noon, timeout_s=60), noon + timedelta(seconds=121))
    assert decision.slot == "a" and not decision.trial
    assert decision.rolled_back == "no health within 120 s"
    assert decision.state.last_outcome is not None and decision.state.last_outcome.reason == "no health within 120 s"


def test_a_committed_trial_becomes_the_committed_slot(noon: datetime) -> None:
    state = us.commit_trial(_trial_state(noon), noon + timedelta(seconds=30))
    assert (state.committed_slot, state.committed_version, state.trial) == ("b", "0.2.0", None)
    assert state.last_outcome is not None and state.last_outcome.state == "committed"
    assert state.inactive_slot == "a"
    assert us.decide_boot(state, noon + timedelta(days=1)).slot == "b"


def test_an_interrupted_install_is_cleaned_and_reported_failed(noon: datetime) -> None:
    state = us.begin_install(us.factory_state("0.1.0"), "r1.gw-3", "0.2.0")
    decision = us.decide_boot(state, noon)
    assert (decision.slot, decision.clean_slot) == ("a", "b")
    assert decision.state.installing is None
    outcome = decision.state.last_outcome
    assert outcome is not None
    assert (outcome.job_id, outcome.state, outcome.version, outcome.reason) == (
        "r1.gw-3", "failed", "0.1.0", "the install was interrupted (the gateway restarted)")


def test_an_install_that_fails_its_smoke_check_leaves_the_committed_slot(noon: datetime) -> None:
    state = us.begin_install(us.factory_state("0.1.0"), "r1.gw-1", "0.2.0")
    state = us.abandon_install(state, "the new slot reports version '0.1.9'", noon, running_version="0.1.0")
    assert state.installing is None and state.trial is None and state.committed_slot == "a"
    assert state.last_outcome is not None and state.last_outcome.state == "failed"


def test_the_state_file_round_trips_and_writes_atomically(tmp_path: Path, noon: datetime,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    root = SlotRoot(tmp_path)
    state = _trial_state(noon)
    root.save(state)
    assert root.load() == state

    def power_cut(_src: object, _dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError, match="power cut"):
        root.save(us.commit_trial(state, noon))
    assert root.load() == state  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_write_atomically_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_atomically(target, b"a" * 1000)
    write_atomically(target, b"b")
    assert target.read_bytes() == b"b"


def test_only_a_collector_run_by_the_launcher_installs_or_takes_the_trial(tmp_path: Path, noon: datetime) -> None:
    from pms_collector.update_slots import InstallError, VenvSlots

    alone = VenvSlots(tmp_path, version="0.1.0", slot=None)
    with pytest.raises(InstallError, match="not run by the update launcher"):
        alone.install(tmp_path / "x.whl", version="0.2.0", job_id="r1.gw-1", health_timeout_s=60)
    assert not (tmp_path / "state.json").exists()  # nothing written, nothing to clean at the next boot
    SlotRoot(tmp_path).save(_trial_state(noon))
    assert VenvSlots(tmp_path, version="0.1.0", slot="a").trial() is None  # the committed slot: not its trial
    trial = VenvSlots(tmp_path, version="0.2.0", slot="b").trial()
    assert trial is not None and trial.version == "0.2.0"
