"""/api/v1/rollouts: staged rollouts of an update image (docs/software-update.md "Rollouts"). Admin only.

The API writes the registry: a new rollout (its members fixed in their groups), or its state
(paused, running again, cancelled). device-manager drives it from there within about a second:
publishes the jobs, withdraws them on cancel, records the gateways' reports. Each call is audited.
"""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from pms_api import rollout_actions
from pms_api.access import actor_of, require_admin
from pms_api.jsonout import json_response
from pms_api.models import Problem
from pms_api.problems import ProblemError
from pms_api.rollout_models import (
    RolloutDetail,
    RolloutGatewayOut,
    RolloutGroupOut,
    RolloutIn,
    RolloutList,
    RolloutOut,
    RolloutPath,
    RolloutQuery,
    StateChangeIn,
)
from pms_registry import Registry
from pms_registry.rollouts import RolloutRecord

ROLLOUTS = Tag(name="rollouts", description="Staged rollouts of update images to gateways")
ANSWERS: dict[Any, Any] = {403: Problem, 404: Problem, 409: Problem}


def rollout_out(registry: Registry, rollout: RolloutRecord) -> RolloutOut:
    groups = registry.rollout_groups(rollout.rollout_id)
    counts: Tally[str] = Tally()
    for group in groups:
        counts.update(group.counts)
    return RolloutOut(
        rollout_id=rollout.rollout_id, image=rollout.image_sha256, version=rollout.version, target=rollout.target,
        groups=rollout.group_sizes, success_threshold=rollout.success_threshold,
        error_threshold=rollout.error_threshold, error_action=rollout.error_action,
        min_group_size=rollout.min_group_size, deadline_s=rollout.deadline_s,
        health_timeout_s=rollout.health_timeout_s, window=rollout.window,
        state=rollout.state,  # type: ignore[arg-type]  # the registry keeps to ROLLOUT_STATES
        state_reason=rollout.state_reason, current_group=rollout.current_group,
        errors_accepted=rollout.errors_accepted, created_at=rollout.created_at, created_by=rollout.created_by,
        updated_at=rollout.updated_at, total=sum(counts.values()), counts=dict(sorted(counts.items())),
        group_progress=[RolloutGroupOut(group_index=g.group_index, total=g.total, started=g.started, counts=g.counts)
                        for g in groups])


def rollout_detail(registry: Registry, rollout: RolloutRecord) -> RolloutDetail:
    members = [RolloutGatewayOut(gateway_id=m.gateway_id, group_index=m.group_index, state=m.state, reason=m.reason,
                                 from_version=m.from_version, version=m.version, job_id=m.job_id, sent_at=m.sent_at,
                                 state_since=m.state_since, deadline_at=m.deadline_at)
               for m in registry.rollout_gateways(rollout.rollout_id)]
    return RolloutDetail(**rollout_out(registry, rollout).model_dump(), gateways=members)


def add_rollout_routes(api: APIBlueprint, registry: Registry) -> None:
    @api.post("/rollouts", tags=[ROLLOUTS], responses={201: RolloutDetail, 422: Problem, **ANSWERS})
    def create_rollout(body: RolloutIn) -> Response:
        """Roll an uploaded image out to a target's gateways, group after group; the first group's jobs
        go out at once (or at its plants' sunset)."""
        require_admin()
        rollout = rollout_actions.create_rollout(registry, body, actor=actor_of(registry))
        return json_response(rollout_detail(registry, rollout), status=201)

    @api.get("/rollouts", tags=[ROLLOUTS], responses={200: RolloutList, **ANSWERS})
    def list_rollouts(query: RolloutQuery) -> Response:
        """The newest rollouts first, with their progress by group."""
        require_admin()
        return json_response(RolloutList(items=[rollout_out(registry, r) for r in registry.rollouts(query.limit)]))

    @api.get("/rollouts/<rollout_id>", tags=[ROLLOUTS], responses={200: RolloutDetail, **ANSWERS})
    def get_rollout(path: RolloutPath) -> Response:
        """A rollout, its groups' progress and every gateway's state."""
        require_admin()
        return json_response(rollout_detail(registry, _found(registry, path.rollout_id)))

    def change(rollout_id: str, action: str, reason: str | None) -> Response:
        require_admin()
        changed = rollout_actions.change_rollout_state(registry, rollout_id, action, actor=actor_of(registry),
                                                       reason=reason)
        return json_response(rollout_detail(registry, changed))

    @api.post("/rollouts/<rollout_id>/pause", tags=[ROLLOUTS], responses={200: RolloutDetail, **ANSWERS})
    def pause_rollout(path: RolloutPath, body: StateChangeIn) -> Response:
        """Send nothing new; gateways mid-update go on. 409 unless running."""
        return change(path.rollout_id, "pause", body.reason)

    @api.post("/rollouts/<rollout_id>/resume", tags=[ROLLOUTS], responses={200: RolloutDetail, **ANSWERS})
    def resume_rollout(path: RolloutPath, body: StateChangeIn) -> Response:
        """Go on: the members in error so far are accepted (thresholds leave them out), and the next group
        starts if the current one passed. 409 unless paused."""
        return change(path.rollout_id, "resume", body.reason)

    @api.post("/rollouts/<rollout_id>/cancel", tags=[ROLLOUTS], responses={200: RolloutDetail, **ANSWERS})
    def cancel_rollout(path: RolloutPath, body: StateChangeIn) -> Response:
        """Withdraw every job not yet restarting; members not started end cancelled. 409 once it ended."""
        return change(path.rollout_id, "cancel", body.reason)


def _found(registry: Registry, rollout_id: str) -> RolloutRecord:
    rollout = registry.rollout(rollout_id)
    if rollout is None:
        raise ProblemError(404, f"no rollout {rollout_id}")
    return rollout
