"""History conflicts: a meter whose E2/E4 history disagreed with the registers it gave live (the
live values stand) is logged once per disagreement its heartbeat names (`meter_history_conflict`,
information only), also across alerts restarts.

The collector's other verdicts on its meter (clock skew, register scale) are alert rules
(pms_alerts.fleet_conditions), stepped by the engine like every other kind.
"""

from __future__ import annotations

from datetime import timedelta

from pms_common.messages import Heartbeat
from pms_registry import Registry
from pms_registry.registry import EventRecord

HISTORY_CONFLICT = "meter_history_conflict"
# How far back the conflicts already logged are looked up when alerts starts.
_LOGGED_WINDOW = timedelta(days=100)


class HistoryConflictLog:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._conflicts_logged: dict[str, str] | None = None  # gateway -> message of its last conflict event

    def history_conflicts(self, beat: Heartbeat) -> list[EventRecord]:
        """The info event of a history conflict the heartbeat names for the first time."""
        if beat.backfill is None or not beat.backfill.last_conflict:
            return []
        return self._history_conflict(beat, beat.backfill.last_conflict)

    def _history_conflict(self, beat: Heartbeat, conflict: str) -> list[EventRecord]:
        # The heartbeat repeats its last conflict until another one happens: log each one once, also
        # across alerts restarts (the messages already logged are read back from the registry).
        if self._conflicts_logged is None:
            logged = self.registry.latest_events_of_kind(HISTORY_CONFLICT, _LOGGED_WINDOW)
            self._conflicts_logged = {r.gateway_id: r.message for r in logged if r.gateway_id is not None}
        message = (f"the E2/E4 history of the meter of {beat.gateway_id} disagreed with the registers it gave"
                   f" live ({conflict}); the live values stand")
        if self._conflicts_logged.get(beat.gateway_id) == message:
            return []
        self._conflicts_logged[beat.gateway_id] = message
        return [self.registry.record_info_event(kind=HISTORY_CONFLICT, at=beat.at, message=message,
                                                gateway_id=beat.gateway_id,
                                                service_code=self.registry.plant_of_gateway(beat.gateway_id),
                                                params={"gateway_id": beat.gateway_id, "conflict": conflict})]
