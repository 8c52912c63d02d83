"""What an operator does to rollouts, whichever door it comes through: a REST call or a console form.

Like gateway_actions: both doors come here, so a new rollout, a pause, resume or cancel is checked,
written and audited the same way. Only the registry changes; device-manager acts on the new state
at its next pass (on cancel it withdraws every job not yet restarting).
"""

from __future__ import annotations

from prometheus_client import Counter

from pms_api.problems import InvalidRequest, ProblemError
from pms_api.rollout_models import RolloutIn
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.rollouts import RolloutConflict, RolloutRecord, RolloutStateError

ROLLOUTS_REFUSED = Counter("pms_api_rollouts_refused_total", "Rollout requests refused, by reason", ["reason"])

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


def create_rollout(registry: Registry, body: RolloutIn, *, actor: str) -> RolloutRecord:
    """A new rollout of an uploaded image, audited; its first group's jobs go out at device-manager's
    next pass. 422 for an unknown image, an empty or unknown target or a setting out of range (the
    sentence names it); 409 when a gateway is still under way in another rollout."""
    image = registry.firmware_image(body.image)
    if image is None:
        ROLLOUTS_REFUSED.labels("unknown_image").inc()
        raise InvalidRequest(f"image {body.image} is unknown: upload it first (POST /api/v1/firmware)")
    now = timeutil.now_jst()
    try:
        rollout = registry.create_rollout(
            image_sha256=image.sha256, version=image.version, target=body.target.as_dict(), group_sizes=body.groups,
            success_threshold=body.success_threshold, error_threshold=body.error_threshold,
            error_action=body.error_action, min_group_size=body.min_group_size, deadline_s=body.deadline_s,
            health_timeout_s=body.health_timeout_s, window=body.window, created_by=actor, at=now)
    except RolloutConflict as exc:
        ROLLOUTS_REFUSED.labels("conflict").inc()
        raise ProblemError(409, str(exc)) from exc
    except RegistryError as exc:
        ROLLOUTS_REFUSED.labels("invalid").inc()
        raise InvalidRequest(str(exc)) from exc
    members = len(registry.rollout_gateways(rollout.rollout_id))
    registry.record_audit(at=now, actor=actor, action="rollout_create", target=rollout.rollout_id,
                          detail={**body.model_dump(mode="json"), "version": image.version, "gateways": members},
                          outcome="created")
    return rollout
