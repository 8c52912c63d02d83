"""The rollout API: create (and what it refuses), read with progress, pause/resume/cancel, the audit.

These stop at the registry; device-manager's engine on a real broker is tests/device_manager/test_rollouts.py."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from pms_common import timeutil
from tests.api.conftest import PROBLEM, Api

IMAGE = "b" * 64
BODY = {"image": IMAGE, "target": {"customer": "c1"}, "groups": [50, 100], "success_threshold": 0.9,
        "error_threshold": 0.1, "min_group_size": 1, "deadline_s": 600, "health_timeout_s": 60}


@pytest.fixture
def fleet(api: Api) -> Api:
    api.registry.add_firmware_image({"version": "2.0.0", "sha256": IMAGE, "size": 100, "min_version": None,
                                     "key_id": "k1", "signature": "x"}, timeutil.now_jst(), "admin")
    for number in range(4):
        api.registry.bind_gateway(f"gw-b{number}", api.codes["b"])
    return api


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def refusal(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    return str(response.get_json()["detail"])


def test_a_rollout_is_created_with_its_groups_and_every_gateway_pending(fleet: Api) -> None:
    created = ok(fleet.send("POST", "/api/v1/rollouts", BODY), 201)
    assert created["rollout_id"].startswith("ro-") and created["version"] == "2.0.0"
    assert (created["state"], created["current_group"], created["total"]) == ("running", 0, 5)  # gw-a + 4 at b
    assert [(g["total"], g["started"]) for g in created["group_progress"]] == [(3, True), (2, False)]
    assert {m["state"] for m in created["gateways"]} == {"pending"}
    assert created["created_by"] == "key:admin (PMS_ADMIN_API_KEY)"
    listed = ok(fleet.get("/api/v1/rollouts"))
    assert [r["rollout_id"] for r in listed["items"]] == [created["rollout_id"]]
    assert "gateways" not in listed["items"][0]
    detail = ok(fleet.get(f"/api/v1/rollouts/{created['rollout_id']}"))
    assert len(detail["gateways"]) == 5 and detail["counts"] == {"pending": 5}
    audit = ok(fleet.get("/api/v1/audit?action=rollout_create"))
    assert audit["items"][0]["target"] == created["rollout_id"] and audit["items"][0]["detail"]["gateways"] == 5


@pytest.mark.parametrize(("change", "field"), [
    ({"image": "c" * 64}, "unknown"),
    ({"target": {"tag": "nobody"}}, "the target has no gateways"),
    ({"target": {"gateways": ["gw-zz"]}}, "target.gateways"),
    ({"target": {"customer": "c1", "tag": "x"}}, "exactly one"),
    ({"groups": [10, 5]}, "groups"),
    ({"groups": [0, 100]}, "groups"),
    ({"success_threshold": 1.2}, "success_threshold"),
    ({"error_threshold": -0.1}, "error_threshold"),
    ({"min_group_size": 0}, "min_group_size"),
    ({"deadline_s": 0}, "deadline_s"),
    ({"window": "noon"}, "window"),
    ({"error_action": "panic"}, "error_action"),
])
def test_bad_rollouts_are_refused_with_a_sentence_naming_the_field(fleet: Api, change: dict[str, Any],
                                                                   field: str) -> None:
    before = REGISTRY.get_sample_value("pms_api_rollouts_refused_total", {"reason": "unknown_image"}) or 0.0
    assert field in refusal(fleet.send("POST", "/api/v1/rollouts", {**BODY, **change}), 422)
    if field == "unknown":
        assert REGISTRY.get_sample_value("pms_api_rollouts_refused_total", {"reason": "unknown_image"}) == before + 1
    assert ok(fleet.get("/api/v1/rollouts"))["items"] == []


def test_pause_resume_cancel_move_the_rollout_or_answer_409(fleet: Api) -> None:
    rid = ok(fleet.send("POST", "/api/v1/rollouts", BODY), 201)["rollout_id"]
    assert "under way in another rollout" in refusal(fleet.send("POST", "/api/v1/rollouts", BODY), 409)
    assert "running" in refusal(fleet.send("POST", f"/api/v1/rollouts/{rid}/resume", {}), 409)
    paused = ok(fleet.send("POST", f"/api/v1/rollouts/{rid}/pause", {"reason": "looking at the canary"}))
    assert (paused["state"], paused["state_reason"]) == ("paused", "looking at the canary")
    assert ok(fleet.send("POST", f"/api/v1/rollouts/{rid}/resume", {}))["state"] == "running"
    assert ok(fleet.send("POST", f"/api/v1/rollouts/{rid}/cancel", {}))["state"] == "cancelled"
    assert "cancelled" in refusal(fleet.send("POST", f"/api/v1/rollouts/{rid}/pause", {}), 409)
    refusal(fleet.send("POST", "/api/v1/rollouts/ro-00000000/pause", {}), 404)
    actions = [e["action"] for e in ok(fleet.get(f"/api/v1/audit?target={rid}"))["items"]]
    assert actions == ["rollout_cancel", "rollout_resume", "rollout_pause", "rollout_create"]
    # Cancelled, its members no longer block a new rollout of the same gateways.
    ok(fleet.send("POST", "/api/v1/rollouts", BODY), 201)


def test_rollouts_are_the_admins(fleet: Api) -> None:
    refusal(fleet.send("POST", "/api/v1/rollouts", BODY, key=fleet.keys["c1"]), 403)
    refusal(fleet.get("/api/v1/rollouts", key=fleet.keys["c1"]), 403)
