"""The register-anomaly rule: one registry event per anomaly the store keeps, never a second one."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pms_alerts import anomalies
from pms_alerts.anomalies import RegisterAnomalyRule, anomaly_message
from pms_alerts.service import EVENTS, Alerts
from pms_alerts.settings import AlertsSettings
from pms_common import timeutil
from pms_common.event_text import render_event
from pms_common.health import Health
from pms_common.messages import EnergyReading
from pms_common.timeutil import JST
from pms_registry import Registry
from pms_store import RegisterAnomaly
from pms_store.energy import to_micros
from pms_store.sqlite import SqliteStore

NOW = datetime(2026, 7, 10, 12, 0, tzinfo=JST)
SLOT_0 = datetime(2026, 6, 1, 10, 0, tzinfo=JST)


def write(store: SqliteStore, gateway_id: str, reverse: list[float], start: datetime = SLOT_0) -> None:
    energy = [EnergyReading(slot_end=start + timedelta(minutes=30 * i), reverse_kwh=kwh) for i, kwh in enumerate(reverse)]
    store.write_readings(gateway_id, power=[], energy=energy)


def open_all(tmp_path: Path) -> tuple[SqliteStore, Registry]:
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    return SqliteStore(tmp_path / "ts.db"), registry


def anomaly_events(registry: Registry) -> list[tuple[str | None, str | None, str]]:
    return sorted((e.gateway_id, e.service_code, e.message) for e in registry.list_events() if e.kind == "register_anomaly")


def test_each_anomaly_is_one_event_once_also_after_a_restart(tmp_path: Path) -> None:
    store, registry = open_all(tmp_path)
    registry.ensure_customer("c1", "Customer 1")
    code = registry.create_plant(customer_id="c1", name="p", address="a", phone="0", created_at=NOW)
    registry.bind_gateway("gw-0001", code)
    write(store, "gw-0001", [1234.0, 1234.5, 0.0, 0.3])  # the meter was replaced before 11:00
    write(store, "gw-free", [10.0, 10.2])  # no anomaly
    rule = RegisterAnomalyRule(registry, store)

    events = rule.check(NOW)
    message = "reverse register of gw-0001 went backwards at slot 2026-06-01T11:00+09:00: 1234.5 → 0.0 kWh (meter replaced?)"
    assert [(e.kind, e.state, e.gateway_id, e.service_code, e.message) for e in events] == [
        ("register_anomaly", "info", "gw-0001", code, message)
    ]
    # The facts are kept, so the Japanese console writes its own sentence.
    assert events[0].params == {"gateway_id": "gw-0001", "direction": "reverse", "slot_end": "2026-06-01T11:00:00+09:00",
                                "previous_kwh": 1234.5, "current_kwh": 0.0, "reason": "backwards"}
    assert render_event(events[0], "ja") == (
        "ゲートウェイ gw-0001 の売電指示値が 2026/06/01 11:00 のコマで逆戻りしました: 1,234.5 kWh → 0.0 kWh")
    assert rule.check(NOW) == []

    # A resend of the same readings, and a new anomaly of an unbound gateway (a glitch to 0 and back).
    write(store, "gw-0001", [1234.0, 1234.5, 0.0, 0.3])
    write(store, "gw-free", [10.2, 0.0, 40.0], start=SLOT_0 + timedelta(minutes=30))
    restarted = RegisterAnomalyRule(Registry(f"sqlite:///{tmp_path}/r.db"), SqliteStore(tmp_path / "ts.db"))
    new = restarted.check(NOW)
    assert [(e.gateway_id, e.service_code) for e in new] == [("gw-free", None), ("gw-free", None)]
    assert "went backwards at slot 2026-06-01T11:00+09:00: 10.2 → 0.0 kWh" in new[0].message
    assert "jumped at slot 2026-06-01T11:30+09:00: 0.0 → 40.0 kWh" in new[1].message
    assert restarted.check(NOW) == []
    assert RegisterAnomalyRule(registry, store).check(NOW) == []
    assert anomaly_events(registry) == sorted([("gw-0001", code, message), *((e.gateway_id, None, e.message) for e in new)])


def test_anomalies_of_one_detection_time_beyond_a_page_are_all_recorded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, registry = open_all(tmp_path)
    # One write, one detection time, a register going backwards in 7 slots: more than a page of 3.
    write(store, "gw-saw", [float(v) for v in (9, 1, 9, 1, 9, 1, 9, 1, 9, 1, 9, 1, 9, 1)])
    rule = RegisterAnomalyRule(registry, store)
    monkeypatch.setattr(anomalies, "PAGE", 3)
    first = rule.check(NOW)
    assert rule.check(NOW) == []
    assert len(first) == 7
    assert len(anomaly_events(registry)) == 7
    assert len({e.message for e in first}) == 7


def test_an_anomaly_committed_after_a_newer_one_is_still_recorded(tmp_path: Path) -> None:
    store, registry = open_all(tmp_path)
    write(store, "gw-a", [5.0, 1.0])
    rule = RegisterAnomalyRule(registry, store)
    [recorded] = rule.check(NOW)
    # Another writer (a second ingest) detected one a minute earlier but committed it only now.
    late = timeutil.now_jst() - timedelta(minutes=1)
    with sqlite3.connect(store.path) as conn:
        conn.execute("INSERT INTO register_anomaly VALUES (?, ?, 'reverse', 7.0, 2.0, 'backwards', ?)",
                     ("gw-b", timeutil.to_epoch(SLOT_0), to_micros(late)))
    [caught] = rule.check(NOW)
    assert (caught.gateway_id, caught.opened_at) == ("gw-b", late)
    assert caught.opened_at < recorded.opened_at
    assert rule.check(NOW) == []


def test_messages_name_register_gateway_slot_and_values() -> None:
    anomaly = RegisterAnomaly("gw-0001", datetime(2026, 6, 1, 1, 30, tzinfo=JST) + timedelta(hours=9), "forward",
                              999.875, 999.8, "backwards", NOW)
    assert anomaly_message(anomaly) == (
        "forward register of gw-0001 went backwards at slot 2026-06-01T10:30+09:00: 999.875 → 999.8 kWh"
        " (meter replaced?)"
    )


class _Client:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, **_: Any) -> None:
        self.published.append((topic, payload))


def test_alerts_log_each_anomaly_event_once_and_count_it(tmp_path: Path) -> None:
    store, registry = open_all(tmp_path)
    write(store, "gw-0001", [50.0, 0.0])
    counted = EVENTS.labels("register_anomaly")._value.get()
    alerts = Alerts(AlertsSettings(anomaly_check_s=3600), registry, Health(), store=store, clock=lambda: NOW)
    client = _Client()
    asyncio.run(alerts.on_tick(client))  # type: ignore[arg-type]
    # Alerts publishes nothing itself: the journal is what the notifier publishes.
    assert client.published == []
    [happening] = [h for h in registry.happenings_after(0) if h.event.kind == "register_anomaly"]
    assert (happening.phase, happening.event.state, happening.event.gateway_id) == ("info", "info", "gw-0001")
    assert EVENTS.labels("register_anomaly")._value.get() == counted + 1

    # A new rule process on the same files (alerts restarted) logs nothing again.
    again = Alerts(AlertsSettings(), registry, Health(), store=store, clock=lambda: NOW)
    asyncio.run(again.on_tick(client))  # type: ignore[arg-type]
    assert len([h for h in registry.happenings_after(0) if h.event.kind == "register_anomaly"]) == 1
