"""What an operator does to a rollout, whichever door it comes through: a REST call or a console button.

Like gateway_actions: both doors come here, so a pause, resume or cancel changes the registry and is
audited the same way. Only the registry changes; device-manager acts on the new state at its next
pass (on cancel it withdraws every job not yet restarting).
"""

from __future__ import annotations

from pms_api.problems import ProblemError
from pms_common import timeutil
from pms_registry import Registry
from pms_registry.rollouts import RolloutRecord, RolloutStateError

# action → the state it asks for, and the audit action (docs/software-update.md "Reading and steering")
ACTIONS = {"pause": ("paused", "rollout_pause"), "resume": ("running", "rollout_resume"),
           "cancel": ("cancelled", "rollout_cancel")}


def change_rollout_state(registry: Registry, rollout_id: str, action: str, *, actor: str,
                         reason: str | None = None) -> RolloutRecord:
    """Pause, resume or cancel a rollout, audited: 404 when there is none, 409 when its state does
    not allow the action (resume a running one, pause an ended one)."""
    state, audit_action = ACTIONS[action]
    now = timeutil.now_jst()
    try:
        changed = registry.set_rollout_state(rollout_id, state, reason or f"{action} by {actor}", now)
    except RolloutStateError as exc:
        raise ProblemError(409, str(exc)) from exc
    if changed is None:
        raise ProblemError(404, f"no rollout {rollout_id}")
    registry.record_audit(at=now, actor=actor, action=audit_action, target=rollout_id, detail={"reason": reason},
                          outcome=state)
    return changed
