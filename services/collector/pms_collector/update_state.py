"""The gateway's software slots as a state, and the launcher's boot decision (sans-IO).

Two slots, `a` and `b`, each a whole install of the collector. One is committed (known good). An
update installs into the other and makes it a *trial*: the launcher boots the trial slot until its
collector reports health (then it becomes the committed slot), or until it has booted `max_boots`
times without health or its health deadline has passed (then the committed slot runs again, and the
rollback is the recorded outcome). An install is bracketed by an `installing` marker, so a gateway
that lost power mid-install finds the half-written slot at its next boot.

Everything here is pure: a state and the time in, a decision and the next state out. The file
adapter (update_slots.py) reads and writes the state; the launcher (boot.py) acts on the decision.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

SlotName = Literal["a", "b"]
MAX_TRIAL_BOOTS = 3
INTERRUPTED_INSTALL = "the install was interrupted (the gateway restarted)"


def other_slot(slot: SlotName) -> SlotName:
    return "b" if slot == "a" else "a"


class Trial(BaseModel):
    """A freshly installed slot on probation."""

    model_config = ConfigDict(frozen=True)

    slot: SlotName
    version: str
    job_id: str
    target_version: str
    boots: int = 0
    health_timeout_s: float
    started_at: AwareDatetime
    health_deadline: AwareDatetime


class Installing(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    slot: SlotName
    target_version: str


class Outcome(BaseModel):
    """How the last job ended on this gateway; reported (retained) at every start until the cloud has it."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    state: Literal["committed", "rolled_back", "failed"]
    version: str  # running after the outcome
    target_version: str
    reason: str | None = None
    at: AwareDatetime


class SlotState(BaseModel):
    """state.json under the update root."""

    model_config = ConfigDict(frozen=True)

    format: Literal[1] = 1
    committed_slot: SlotName
    committed_version: str
    trial: Trial | None = None
    installing: Installing | None = None
    last_outcome: Outcome | None = None

    @property
    def inactive_slot(self) -> SlotName:
        return other_slot(self.committed_slot)


class BootDecision(BaseModel):
    """Which slot to run now, the state to write before running it, and what to clean first."""

    model_config = ConfigDict(frozen=True)

    slot: SlotName
    version: str
    trial: bool
    state: SlotState
    clean_slot: SlotName | None = None  # a half-written slot to remove (interrupted install)
    rolled_back: str | None = None  # the reason, when a trial was given up


def factory_state(version: str) -> SlotState:
    """A fresh root: slot a holds the factory install."""
    return SlotState(committed_slot="a", committed_version=version)


def decide_boot(state: SlotState, now: datetime, *, max_boots: int = MAX_TRIAL_BOOTS) -> BootDecision:
    """What the launcher runs at `now`; a trial boot is counted in the returned state."""
    clean: SlotName | None = None
    if state.installing is not None:
        marker = state.installing
        clean = marker.slot
        outcome = Outcome(job_id=marker.job_id, state="failed", version=state.committed_version,
                          target_version=marker.target_version, reason=INTERRUPTED_INSTALL, at=now)
        state = state.model_copy(update={"installing": None, "last_outcome": outcome})
    trial = state.trial
    if trial is not None:
        reason = None
        if trial.boots >= max_boots:
            reason = f"crash loop: {trial.boots} boots without a healthy start"
        elif now >= trial.health_deadline:
            seconds = (trial.health_deadline - trial.started_at).total_seconds()
            reason = f"no health within {seconds:.0f} s"
        if reason is None:
            counted = trial.model_copy(update={"boots": trial.boots + 1})
            return BootDecision(slot=trial.slot, version=trial.version, trial=True,
                                state=state.model_copy(update={"trial": counted}), clean_slot=clean)
        state = rollback(state, reason, now)
        return BootDecision(slot=state.committed_slot, version=state.committed_version, trial=False, state=state,
                            clean_slot=clean, rolled_back=reason)
    return BootDecision(slot=state.committed_slot, version=state.committed_version, trial=False, state=state,
                        clean_slot=clean)


def begin_install(state: SlotState, job_id: str, target_version: str) -> SlotState:
    """Mark the inactive slot as being written (any trial is over: it is the slot being replaced)."""
    return state.model_copy(update={"installing": Installing(job_id=job_id, slot=state.inactive_slot,
                                                             target_version=target_version)})


def start_trial(state: SlotState, *, version: str, now: datetime, health_timeout_s: float,
                restart_allowance_s: float = 120.0) -> SlotState:
    """The install finished: boot the new slot on probation. The deadline allows for the restart."""
    marker = state.installing
    if marker is None:
        raise ValueError("no install in progress to put on trial")
    deadline = now + timedelta(seconds=health_timeout_s + restart_allowance_s)
    trial = Trial(slot=marker.slot, version=version, job_id=marker.job_id, target_version=marker.target_version,
                  health_timeout_s=health_timeout_s, started_at=now, health_deadline=deadline)
    return state.model_copy(update={"installing": None, "trial": trial})


def abandon_install(state: SlotState, reason: str, now: datetime, *, running_version: str) -> SlotState:
    """The install failed before the switch (smoke check, disk): the committed slot stays."""
    marker = state.installing
    if marker is None:
        return state
    outcome = Outcome(job_id=marker.job_id, state="failed", version=running_version,
                      target_version=marker.target_version, reason=reason, at=now)
    return state.model_copy(update={"installing": None, "last_outcome": outcome})


def commit_trial(state: SlotState, now: datetime) -> SlotState:
    """The trial slot's collector is healthy: it becomes the committed slot."""
    trial = state.trial
    if trial is None:
        return state
    outcome = Outcome(job_id=trial.job_id, state="committed", version=trial.version,
                      target_version=trial.target_version, at=now)
    return state.model_copy(update={"committed_slot": trial.slot, "committed_version": trial.version,
                                    "trial": None, "last_outcome": outcome})


def rollback(state: SlotState, reason: str, now: datetime) -> SlotState:
    """Give the trial up: the committed slot runs again, and the rollback is the outcome to report."""
    trial = state.trial
    if trial is None:
        return state
    outcome = Outcome(job_id=trial.job_id, state="rolled_back", version=state.committed_version,
                      target_version=trial.target_version, reason=reason, at=now)
    return state.model_copy(update={"trial": None, "last_outcome": outcome})


def record_outcome(state: SlotState, outcome: Outcome) -> SlotState:
    return state.model_copy(update={"last_outcome": outcome})
