"""The meter-fault rule: a gateway's heartbeat reporting its meter's clock skewed or its scale refused
becomes one event per episode, recovered when the heartbeat reports the meter well again."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pms_alerts.meter_faults import HistoryConflictLog
from pms_alerts.service import Alerts
from pms_alerts.settings import AlertsSettings
from pms_common.health import Health
from pms_common.messages import BackfillStatus, Heartbeat
from pms_common.timeutil import JST
from pms_registry import Registry

T = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
D3_ZERO = "D3 (the energy coefficient) is 0, outside 1–999999: no energy is read from this meter until it reports a valid scale"


def beat(at: datetime, *, skew: float | None = 0.0, since: datetime | None = None, scale: str | None = None,
         gateway_id: str = "gw-0001") -> Heartbeat:
    return Heartbeat(gateway_id=gateway_id, at=at, uptime_s=1, firmware="f", module_family="sim",
                     read_errors_total=0, outbox_depth=0, power_interval_s=60, heartbeat_interval_s=30,
                     meter_clock_skew_s=skew, meter_clock_skewed_since=since, meter_scale_problem=scale)


def registry_at(tmp_path: Path) -> Registry:
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    return registry


class Client:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, **_: Any) -> None:
        self.published.append((topic, payload))


def test_alerts_follow_the_meter_verdicts_as_alert_episodes(tmp_path: Path) -> None:
    # The gateway serves no plant: its episodes have the subject gateway:<id> under the global rules
    # (meter_clock_skew ships raising at once and clearing after an hour of a good clock).
    registry = registry_at(tmp_path)
    alerts = Alerts(AlertsSettings(), registry, Health())
    client = Client()

    def hear(heartbeat: Heartbeat) -> None:
        asyncio.run(alerts.on_message(client, heartbeat))  # type: ignore[arg-type]
        alerts.evaluate(heartbeat.at, alerts.facts)

    hear(beat(T, skew=1200, since=T))
    hear(beat(T + timedelta(minutes=1), skew=1200, since=T))
    hear(beat(T + timedelta(minutes=2)))
    alerts.evaluate(T + timedelta(minutes=61), alerts.facts)
    hear(beat(T + timedelta(minutes=62)))
    assert client.published == []
    assert [(h.phase, h.at, h.event.kind, h.event.gateway_id, h.event.message) for h in registry.happenings_after(0)] == [
        # The stored English sentence is the catalogue's (pms_common.event_text), as MQTT readers get it.
        ("raised", T, "meter_clock_skew", "gw-0001", "The meter clock of gw-0001 is 20 min ahead of the gateway's clock"),
        ("cleared", T + timedelta(minutes=62), "meter_clock_skew", "gw-0001",
         "The meter clock of gw-0001 is 20 min ahead of the gateway's clock"),
    ]
    [episode] = registry.list_alerts()
    assert (episode.subject, episode.state, episode.params) == ("gateway:gw-0001", "resolved",
                                                                {"gateway_id": "gw-0001", "skew_s": 1200.0})


def test_each_history_conflict_is_logged_once_also_across_a_restart(tmp_path: Path) -> None:
    registry = registry_at(tmp_path)
    rule = HistoryConflictLog(registry)
    conflict = "E2/E4 of 2026-06-01 disagree with 3 slots read live (09:30: reverse 12.4 live, 12.5 in the history)"

    def with_conflict(at: datetime, last: str | None) -> Heartbeat:
        status = BackfillStatus(conflicts_total=0 if last is None else 1, last_conflict=last)
        return beat(at).model_copy(update={"backfill": status})

    assert rule.history_conflicts(with_conflict(T, None)) == []
    events = rule.history_conflicts(with_conflict(T + timedelta(minutes=1), conflict))
    assert [(e.kind, e.state, e.gateway_id) for e in events] == [("meter_history_conflict", "info", "gw-0001")]
    assert conflict in events[0].message and events[0].message.endswith("the live values stand")
    assert events[0].params == {"gateway_id": "gw-0001", "conflict": conflict}
    # The heartbeat repeats its last conflict: nothing new, neither now nor after alerts restarts.
    assert rule.history_conflicts(with_conflict(T + timedelta(minutes=2), conflict)) == []
    assert HistoryConflictLog(registry).history_conflicts(with_conflict(T + timedelta(minutes=3), conflict)) == []
    other = conflict.replace("2026-06-01", "2026-06-02")
    assert len(HistoryConflictLog(registry).history_conflicts(with_conflict(T + timedelta(days=1), other))) == 1
    assert len([e for e in registry.list_events() if e.kind == "meter_history_conflict"]) == 2
