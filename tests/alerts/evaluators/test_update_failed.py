"""update_failed follows the gateway's last update/state report: failed or rolled back raises,
committed clears, a job under way or no report tells nothing."""

from __future__ import annotations

from datetime import datetime

from pms_alerts.evaluators import UpdateFailed
from pms_common.messages import UpdateReport
from tests.alerts.evaluators.conftest import JST, World, facts, rule

NOW = datetime(2026, 7, 10, 12, 0, tzinfo=JST)


def report(gateway_id: str, state: str, reason: str | None = None) -> UpdateReport:
    return UpdateReport(gateway_id=gateway_id, job_id="job-7", state=state, version="1.4.0",  # type: ignore[arg-type]
                        target_version="1.5.0", reason=reason, at=NOW)


def test_failed_and_rolled_back_raise_committed_clears_under_way_tells_nothing(world: World) -> None:
    codes = {state: world.plant(f"gw-{state}") for state in ("failed", "rolled_back", "committed", "installing")}
    quiet = world.plant("gw-quiet")
    reports = {f"gw-{state}": report(f"gw-{state}", state, "health check failed" if state != "committed" else None)
               for state in codes}
    contexts = world.contexts()
    observed = UpdateFailed().observe_all(contexts, {c.service_code: rule("update_failed") for c in contexts}, NOW,
                                          facts(update_reports=reports))

    failed = observed[codes["failed"]]
    assert failed.holds is True and failed.gateway_id == "gw-failed"
    assert {k: failed.params[k] for k in ("gateway_id", "version", "target_version", "state", "reason")} == {
        "gateway_id": "gw-failed", "version": "1.4.0", "target_version": "1.5.0", "state": "failed",
        "reason": "health check failed"}
    assert observed[codes["rolled_back"]].holds is True
    assert observed[codes["rolled_back"]].params["state"] == "rolled_back"
    assert observed[codes["committed"]].holds is False
    assert codes["installing"] not in observed and quiet not in observed  # None: timers stay


def test_a_plant_without_an_enabled_rule_is_not_observed(world: World) -> None:
    code = world.plant("gw-1")
    observed = UpdateFailed().observe_all(world.contexts(), {}, NOW,
                                          facts(update_reports={"gw-1": report("gw-1", "failed")}))
    assert code not in observed
