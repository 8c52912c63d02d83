"""Acceptance 3 of issue 13: 1,000 plants going offline at once (a broker outage) yield at most one
grouped notification per channel per grouping interval, listing every plant; their recovery one more.

The outage goes through the alerts service's own path: 1,000 gateways' liveness transitions, the
engine with the shipped gateway_offline rule (5 min pending, 5 min to clear), the registry's journal,
then the notifier with its real webhook receiver and SMTP server.

Most of its time (12 s on two idle cores, 30-40 s when they are shared with other suites) goes into
making 1,000 plants and 2,000 alert transitions in the registry; the notifier's part is ~3 s. A scale run, so `slow`: CI runs it, a developer's `make test` does not."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import datetime, timedelta

import pytest

from pms_alerts.notify.grouping import GroupTiming, flush_at
from pms_alerts.service import Alerts
from pms_alerts.settings import AlertsSettings
from pms_common.health import Health
from pms_common.liveness import Transition
from tests.alerts.notify.conftest import T0, Fleet

PLANTS = 1000


@pytest.mark.slow
def test_a_thousand_plants_offline_then_back(fleet: Fleet) -> None:
    plants = PLANTS
    fleet.add_plants(plants - len(fleet.codes))
    codes = fleet.codes
    assert len(codes) == plants
    alerts = Alerts(AlertsSettings(), fleet.registry, Health(), conditions=())
    gateways = [f"gw-{i:04d}" for i in range(plants)]
    for gateway_id, code in zip(gateways, codes, strict=True):
        fleet.registry.bind_gateway(gateway_id, code, at=T0 - timedelta(days=1))

    def everyone(state: str, at: datetime) -> None:
        for gateway_id in gateways:
            asyncio.run(alerts.on_transition(None, Transition(gateway_id, state, at, "connection lost")))  # type: ignore[arg-type]

    everyone("online", T0 - timedelta(hours=1))
    alerts.evaluate(T0 - timedelta(hours=1), alerts.facts)
    everyone("offline", T0 - timedelta(minutes=5))  # the broker outage: every gateway at one moment
    alerts.evaluate(T0 - timedelta(minutes=5), alerts.facts)  # pending
    alerts.evaluate(T0, alerts.facts)  # the shipped rule's 5 minutes have passed: 1,000 raised at T0
    assert len([h for h in fleet.registry.happenings_after(0, limit=5000) if h.phase == "raised"]) == plants
    dispatcher = fleet.dispatcher()
    fleet.run(dispatcher, seconds=100, step_s=10)
    everyone("online", fleet.clock.now)  # the broker is back at T0+100 s ...
    alerts.evaluate(fleet.clock.now, alerts.facts)
    fleet.run(dispatcher, seconds=300, step_s=10)
    alerts.evaluate(fleet.clock.now, alerts.facts)  # ... the clear condition has held 5 min: 1,000 cleared at T0+400 s
    fleet.run(dispatcher, seconds=60, step_s=10)  # their group waits 30 s (the interval since T0+30 s is over)

    deliveries = sorted(fleet.registry.list_deliveries(), key=lambda d: d.delivery_id)
    assert Counter(d.channel_kind for d in deliveries) == {"webhook": 2, "email": 2}
    assert {d.state for d in deliveries} == {"delivered"}
    for channel_id in (fleet.webhook_channel.channel_id, fleet.mail_channel.channel_id):
        made = [d.created_at for d in deliveries if d.channel_id == channel_id]
        assert made == [T0 + timedelta(seconds=30), T0 + timedelta(seconds=430)]  # group_wait after each wave
        assert flush_at(first_queued_at=T0 + timedelta(seconds=400), last_flush_at=made[0],
                        timing=GroupTiming(30, 300)) == made[1]
        assert all(later - earlier >= timedelta(seconds=300) for earlier, later in itertools.pairwise(made))

    raised, cleared = fleet.webhook.accepted
    assert raised.body["count"] == plants and {h["phase"] for h in raised.body["happenings"]} == {"raised"}
    assert cleared.body["count"] == plants and {h["phase"] for h in cleared.body["happenings"]} == {"cleared"}
    assert {h["service_code"] for h in raised.body["happenings"]} == set(codes)
    assert {h["service_code"] for h in cleared.body["happenings"]} == set(codes)

    down, up = fleet.mail.received()
    assert sorted(fleet.mail.received_happenings()) == sorted(
        h["happening_id"] for item in fleet.webhook.accepted for h in item.body["happenings"])
    assert len(set(fleet.mail.received_happenings())) == 2 * plants
    assert down.subject == f"[PMS] {plants}件のお知らせ (異常発生 {plants}件)"
    assert up.subject == f"[PMS] {plants}件のお知らせ (復旧 {plants}件)"
    down_text = down.text
    assert all(f"発電所{i} ({code})" in down_text for i, code in enumerate(codes, start=1))
    assert up.text.count("復旧日時:") == plants
