"""The billing-start rule: decided once, on the JST day of the first slot that sold energy."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pms_alerts.billing import BillingStartRule, first_sold_day
from pms_alerts.service import Alerts
from pms_alerts.settings import AlertsSettings
from pms_common.event_text import render_event
from pms_common.health import Health
from pms_common.messages import EnergyReading
from pms_common.timeutil import JST
from pms_registry import Registry
from pms_store.sqlite import SqliteStore

NOW = datetime(2026, 7, 10, 12, 0, tzinfo=JST)


def registers(gateway_id: str, store: SqliteStore, start: datetime, reverse: list[float]) -> None:
    energy = [
        EnergyReading(slot_end=start + timedelta(minutes=30 * i), forward_kwh=100.0 + i, reverse_kwh=kwh)
        for i, kwh in enumerate(reverse)
    ]
    store.write_readings(gateway_id, power=[], energy=energy)


def plant(registry: Registry, gateway_id: str) -> str:
    registry.ensure_customer("c1", "Customer 1")
    code = registry.create_plant(customer_id="c1", name="p", address="a", phone="0", created_at=NOW)
    registry.bind_gateway(gateway_id, code)
    return code


def test_first_sold_day_is_the_jst_day_of_the_first_slot_with_sold_energy(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ts.db")
    # Registers stand still through June 30 (no sale); the slot ending 00:30 on July 1 JST sells.
    registers("gw-1", store, datetime(2026, 6, 30, 23, 0, tzinfo=JST), [50.0, 50.0, 50.0, 50.4, 50.9])
    assert first_sold_day(store, ["gw-1"], NOW) == date(2026, 7, 1)
    assert first_sold_day(store, ["gw-unknown"], NOW) is None


def test_a_plant_that_sells_gets_its_billing_start_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ts.db")
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    selling = plant(registry, "gw-sell")
    idle = plant(registry, "gw-idle")
    registers("gw-sell", store, datetime(2026, 7, 3, 9, 0, tzinfo=JST), [10.0, 10.5, 11.5])
    registers("gw-idle", store, datetime(2026, 7, 3, 9, 0, tzinfo=JST), [7.0, 7.0, 7.0])
    rule = BillingStartRule(registry, store)

    events = rule.check(NOW)
    assert [(e.kind, e.service_code) for e in events] == [("billing_start_decided", selling)]
    assert "2026-07-03" in events[0].message
    assert events[0].params == {"day": "2026-07-03"}
    assert render_event(events[0], "ja") == f"{selling}: 課金開始日を 2026年7月3日 に決定しました"
    assert registry.get_plant(selling).billing_start_date == date(2026, 7, 3)  # type: ignore[union-attr]
    assert registry.get_plant(idle).billing_start_date is None  # type: ignore[union-attr]

    # Later sales never move the decided date, and no second event is logged.
    registers("gw-sell", store, datetime(2026, 6, 1, 9, 0, tzinfo=JST), [1.0, 2.0])
    assert rule.check(NOW + timedelta(days=1)) == []
    assert registry.get_plant(selling).billing_start_date == date(2026, 7, 3)  # type: ignore[union-attr]
    assert len([e for e in registry.list_events() if e.kind == "billing_start_decided"]) == 1


class _Client:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, **_: Any) -> None:
        self.published.append((topic, payload))


def test_alerts_log_the_decision_and_check_at_most_once_per_period(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "ts.db")
    registry = Registry(f"sqlite:///{tmp_path}/r.db")
    registry.migrate()
    code = plant(registry, "gw-sell")
    clock = [datetime(2026, 7, 3, 12, 0, tzinfo=JST)]  # the service's clock: an hour per check period
    alerts = Alerts(AlertsSettings(billing_check_s=3600), registry, Health(), store=store, clock=lambda: clock[0])
    client = _Client()

    def decisions() -> list[tuple[str, str | None]]:
        return [(h.phase, h.event.service_code) for h in registry.happenings_after(0)
                if h.event.kind == "billing_start_decided"]

    asyncio.run(alerts.on_tick(client))  # type: ignore[arg-type]
    assert decisions() == []  # nothing sold yet
    registers("gw-sell", store, datetime(2026, 7, 3, 9, 0, tzinfo=JST), [10.0, 10.5])
    asyncio.run(alerts.on_tick(client))  # type: ignore[arg-type]
    assert decisions() == []  # the next check is an hour away
    clock[0] += timedelta(hours=1)
    asyncio.run(alerts.on_tick(client))  # type: ignore[arg-type]
    assert decisions() == [("info", code)]
    assert client.published == []  # the notifier publishes the journal, not the rules
