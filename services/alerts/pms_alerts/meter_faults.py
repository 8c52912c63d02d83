"""Meter-fault rule: what a gateway's heartbeat says about its meter becomes one event per episode.

The collector judges the meter (its clock against the gateway's, its register scale D3/E1/D7) and
reports the verdict in every heartbeat; this rule turns a verdict going bad into an open event
(`meter_clock_skew`, `meter_scale_invalid`) and its going well again into the event's recovery.
A meter whose E2/E4 history disagreed with the registers it gave live (the live values stand) is
logged once per disagreement the heartbeat names (`meter_history_conflict`, information only).
The registry keeps at most one open event per kind and gateway, so an episode is one event also
across alerts restarts; alerts remembers each gateway's last verdict only to spare the registry a
query per heartbeat.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pms_common.messages import Heartbeat
from pms_registry import Registry
from pms_registry.registry import EventRecord

CLOCK_SKEW = "meter_clock_skew"
SCALE_INVALID = "meter_scale_invalid"
HISTORY_CONFLICT = "meter_history_conflict"
# How far back the conflicts already logged are looked up when alerts starts.
_LOGGED_WINDOW = timedelta(days=100)


def skew_message(gateway_id: str, skew_s: float) -> str:
    minutes = abs(skew_s) / 60
    amount = f"{abs(skew_s):.0f} s" if minutes < 2 else f"{minutes:.0f} minutes" if minutes < 120 else (
        f"{minutes / 60:.1f} hours")
    side = "ahead of" if skew_s > 0 else "behind"
    return f"the meter clock of {gateway_id} is {amount} {side} the gateway's clock"


class MeterFaultRule:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._bad: dict[tuple[str, str], bool] = {}  # (gateway, kind) -> bad as last reported
        self._conflicts_logged: dict[str, str] | None = None  # gateway -> message of its last conflict event

    def on_heartbeat(self, beat: Heartbeat) -> list[EventRecord]:
        """The events opened or recovered by this heartbeat."""
        records: list[EventRecord] = []
        if beat.meter_clock_skew_s is not None:  # a collector that judges the meter's clock
            since = beat.meter_clock_skewed_since
            message = skew_message(beat.gateway_id, beat.meter_clock_skew_s)
            records += self._follow(beat, CLOCK_SKEW, message, bad=since is not None, since=since,
                                    params={"gateway_id": beat.gateway_id, "skew_s": beat.meter_clock_skew_s})
        scale = beat.meter_scale_problem
        message = f"the meter of {beat.gateway_id} reports an impossible scale: {scale}"
        records += self._follow(beat, SCALE_INVALID, message, bad=scale is not None, since=None,
                                params={"gateway_id": beat.gateway_id, "problem": scale})
        if beat.backfill is not None and beat.backfill.last_conflict:
            records += self._history_conflict(beat, beat.backfill.last_conflict)
        return records

    def history_conflicts(self, beat: Heartbeat) -> list[EventRecord]:
        """The info event of a history conflict the heartbeat names for the first time (the service's
        path: the clock-skew and scale verdicts are alert rules now, see pms_alerts.fleet_conditions)."""
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

    def _follow(self, beat: Heartbeat, kind: str, message: str, *, bad: bool, since: datetime | None,
                params: dict[str, Any]) -> list[EventRecord]:
        """`params` are the facts of the raise (docs/alerts.md, "Event texts")."""
        key = (beat.gateway_id, kind)
        if self._bad.get(key) is bad:
            return []
        self._bad[key] = bad
        if bad:
            record, opened = self.registry.open_event(
                kind=kind, at=since or beat.at, message=message, gateway_id=beat.gateway_id,
                service_code=self.registry.plant_of_gateway(beat.gateway_id), params=params)
            return [record] if opened else []
        recovered = self.registry.recover_event(kind=kind, gateway_id=beat.gateway_id, at=beat.at)
        return [] if recovered is None else [recovered]
