"""update_failed: the last software-update report of one of the plant's gateways says the job failed
or was rolled back (the retained `pms/v1/gw/{id}/update/state`, kept in FleetFacts.update_reports).

Holds on `failed` or `rolled_back`; clears on `committed` (the gateway runs a version it was sent);
a job under way (downloading ... checking_health) or no report at all tells nothing (None), so a
retry after a failure keeps the alert until it commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pms_alerts.conditions import FleetFacts, Observation, PlantContext
from pms_alerts.evaluators.common import enabled, stamp
from pms_common.messages import UpdateReport
from pms_registry.records import AlertRule

FAILED_STATES = frozenset({"failed", "rolled_back"})


def report_params(report: UpdateReport) -> dict[str, str | None]:
    return {"gateway_id": report.gateway_id, "version": report.version, "target_version": report.target_version,
            "state": report.state, "reason": report.reason, "job_id": report.job_id, "at": stamp(report.at)}


class UpdateFailed:
    kind = "update_failed"

    def observe_all(self, plants: Sequence[PlantContext], rules: Mapping[str, AlertRule],
                    now: datetime, facts: FleetFacts) -> dict[str, Observation]:
        observed: dict[str, Observation] = {}
        for plant in enabled(plants, rules):
            reports = [facts.update_reports[g] for g in plant.gateway_ids if g in facts.update_reports]
            failed = [r for r in reports if r.state in FAILED_STATES]
            if failed:
                report = max(failed, key=lambda r: r.at)
                observed[plant.service_code] = Observation(True, report_params(report), gateway_id=report.gateway_id)
            elif reports and all(r.state == "committed" for r in reports):
                report = max(reports, key=lambda r: r.at)
                observed[plant.service_code] = Observation(False, report_params(report), gateway_id=report.gateway_id)
        return observed
