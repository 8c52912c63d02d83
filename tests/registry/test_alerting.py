"""Alert rules, episodes, the journal and channels in the registry (libs/pms_registry/alerting.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from pms_registry import schema as t
from pms_registry.alert_defaults import DEFAULT_RULES
from pms_registry.migrations import upgrade
from pms_registry.records import AlertRecord
from pms_registry.registry import Registry, RegistryError
from tests.registry.v1_fixture import T0


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path}/pms.db")
    reg.migrate()
    reg.ensure_customer("c1", "One")
    reg.ensure_customer("c2", "Two")
    yield reg
    reg.close()


def _plant(registry: Registry, customer: str = "c1") -> str:
    return registry.create_plant(customer_id=customer, name="P", address="Tokyo", phone="03", created_at=T0)


def _pending(code: str, kind: str = "no_generation") -> AlertRecord:
    return AlertRecord(alert_id=None, kind=kind, subject=code, service_code=code, gateway_id=None, rule_id=None,
                       severity="critical", state="pending", pending_since=T0)


def test_every_kind_has_its_global_default_and_the_default_cannot_be_deleted(registry: Registry) -> None:
    rules = registry.list_alert_rules()
    assert sorted(r.kind for r in rules) == sorted(DEFAULT_RULES)
    assert all(r.scope == "global" and r.scope_value is None and r.enabled for r in rules)
    no_generation = registry.list_alert_rules("no_generation")[0]
    assert no_generation.params["irradiance_w_m2"] == 350
    with pytest.raises(RegistryError, match="disable it instead"):
        registry.delete_alert_rule(no_generation.rule_id)
    edited = registry.update_alert_rule(no_generation.rule_id, at=T0, by="ops",
                                        params={**no_generation.params, "irradiance_w_m2": 400})
    assert (edited.params["irradiance_w_m2"], edited.updated_by) == (400, "ops")
    registry.migrate()  # seeding again leaves an edited default as it is
    assert registry.get_alert_rule(no_generation.rule_id) == edited


def test_overrides_are_checked_and_unique_per_scope(registry: Registry) -> None:
    code = _plant(registry)
    rule = registry.create_alert_rule(kind="no_generation", scope="plant", scope_value=code, severity="warning",
                                      raise_for_s=600, clear_for_s=300, params={"irradiance_w_m2": 500}, at=T0)
    assert (rule.scope, rule.scope_value) == ("plant", code)
    with pytest.raises(RegistryError, match="already exists for plant"):
        registry.create_alert_rule(kind="no_generation", scope="plant", scope_value=code, severity="warning",
                                   raise_for_s=0, clear_for_s=0, params={}, at=T0)
    for kwargs, reason in (
        ({"kind": "bogus"}, "no alert kind 'bogus'"),
        ({"scope": "region"}, "scope is one of"),
        ({"scope": "customer", "scope_value": "nobody"}, "no customer 'nobody'"),
        ({"scope": "plant", "scope_value": "pss99999999"}, "no plant 'pss99999999'"),
        ({"scope": "global", "scope_value": "x"}, "a global rule has no scope value"),
        ({"severity": "fatal"}, "severity is one of"),
        ({"raise_for_s": -1}, "raise_for_s is between"),
    ):
        args = {"kind": "data_gap", "scope": "customer", "scope_value": "c1", "severity": "warning",
                "raise_for_s": 0, "clear_for_s": 0, "params": {}, "at": T0, **kwargs}
        with pytest.raises(RegistryError, match=reason):
            registry.create_alert_rule(**args)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="no field 'kind'"):
        registry.update_alert_rule(rule.rule_id, at=T0, kind="data_gap")
    assert registry.delete_alert_rule(rule.rule_id) and not registry.delete_alert_rule(rule.rule_id)


def test_plant_scopes_name_the_customer_and_the_tags_of_bound_gateways(registry: Registry) -> None:
    code = _plant(registry, "c2")
    registry.bind_gateway("gw-1", code, at=T0)
    registry.set_gateway_tags("gw-1", ["north", "roof"])
    scopes = registry.plant_scopes()
    assert scopes[code].customer_id == "c2" and scopes[code].tags == frozenset({"north", "roof"})


def test_an_episode_fires_is_acknowledged_re_raised_and_resolved_with_a_journal(registry: Registry) -> None:
    code = _plant(registry)
    pending = registry.save_alert(_pending(code))
    assert pending.alert_id is not None and registry.open_alerts() == [pending]
    with pytest.raises(RegistryError, match="unresolved no_generation alert"):
        registry.save_alert(_pending(code))
    with pytest.raises(RegistryError, match="only a firing alert"):
        registry.acknowledge_alert(pending.alert_id, by="ops", comment=None, at=T0)

    fired, event = registry.fire_alert(pending, at=T0 + timedelta(minutes=30), message="no generation",
                                       params={"irradiance_w_m2": 612})
    assert (fired.state, fired.event_id, event.state, event.alert_id) == ("firing", event.event_id, "open",
                                                                         fired.alert_id)
    assert event.params == {"irradiance_w_m2": 612} and event.severity == "critical"

    acked, ack_event = registry.acknowledge_alert(fired.alert_id or 0, by="ops", comment="crew on site",
                                                  at=T0 + timedelta(minutes=40))
    assert (acked.acknowledged_by, acked.ack_comment) == ("ops", "crew on site")
    assert ack_event.kind == "alert_acknowledged" and ack_event.params["alert_kind"] == "no_generation"
    assert registry.list_events()[1].acknowledged_by == "ops"  # the raise's event shows who saw it

    # A re-raise of the same episode (after a flap) clears the acknowledgement.
    refired, _ = registry.fire_alert(acked, at=T0 + timedelta(minutes=50), message="again", params={})
    assert refired.acknowledged_at is None and registry.get_alert(fired.alert_id or 0) == refired

    resolved, recovered = registry.resolve_alert(refired, at=T0 + timedelta(hours=2), params={"duration_s": 4200})
    assert resolved.state == "resolved" and registry.open_alerts() == []
    assert recovered is not None and recovered.state == "recovered" and recovered.params["duration_s"] == 4200

    phases = [(h.phase, h.event.kind) for h in registry.happenings_after(0)]
    assert phases == [("raised", "no_generation"), ("acknowledged", "alert_acknowledged"),
                      ("raised", "no_generation"), ("cleared", "no_generation")]
    first = registry.happenings_after(0)[0]
    assert registry.happenings_after(first.happening_id)[0].phase == "acknowledged"
    assert registry.list_alerts(customer_id="c2") == [] and registry.count_alerts(state="resolved") == 1


def test_open_lists_pending_and_firing_alerts_not_resolved_ones(registry: Registry) -> None:
    first, second, third = (_plant(registry) for _ in range(3))
    pending = registry.save_alert(_pending(first))
    firing, _ = registry.fire_alert(registry.save_alert(_pending(second)), at=T0, message="m", params={})
    registry.resolve_alert(registry.save_alert(_pending(third)), at=T0)
    assert [a.alert_id for a in registry.list_alerts(state="open")] == [firing.alert_id, pending.alert_id]
    assert registry.count_alerts(state="open") == 2 and registry.count_alerts() == 3


def test_a_pending_episode_resolves_quietly(registry: Registry) -> None:
    pending = registry.save_alert(_pending(_plant(registry)))
    resolved, event = registry.resolve_alert(pending, at=T0 + timedelta(minutes=5))
    assert resolved.state == "resolved" and event is None and registry.happenings_after(0) == []


def test_the_old_event_calls_journal_too(registry: Registry) -> None:
    registry.open_event(kind="gateway_offline", at=T0, message="m", gateway_id="gw-1", params={"reason": "will"})
    registry.recover_event(kind="gateway_offline", gateway_id="gw-1", at=T0 + timedelta(minutes=9),
                           params={"duration_s": 540})
    registry.record_info_event(kind="billing_start_decided", at=T0, message="m", params={"day": "2026-04-01"})
    assert [h.phase for h in registry.happenings_after(0)] == ["raised", "cleared", "info"]
    offline = registry.happenings_after(0)[0].event
    assert offline.params == {"reason": "will", "duration_s": 540} and offline.state == "recovered"


def test_cursors_start_at_zero_and_keep_their_value(registry: Registry) -> None:
    assert registry.get_cursor("notify") == 0
    registry.set_cursor("notify", 7)
    registry.set_cursor("notify", 9)
    assert registry.get_cursor("notify") == 9 and registry.get_cursor("mqtt") == 0


def test_channels_reach_their_customer_and_the_operator_by_severity(registry: Registry) -> None:
    code = _plant(registry, "c1")
    mine = registry.create_channel(kind="webhook", name="c1 hook", customer_id="c1", at=T0,
                                   config={"url": "https://example.test/hook", "secrets": ["s1"]},
                                   min_severity="critical")
    registry.create_channel(kind="email", name="c2 mail", customer_id="c2", at=T0, config={"to": ["a@b.test"]})
    ops = registry.create_channel(kind="email", name="ops", at=T0, config={"to": ["ops@b.test"]},
                                  min_severity="info", language="en")
    assert [c.channel_id for c in registry.channels_for(code, "critical")] == [mine.channel_id, ops.channel_id]
    assert [c.channel_id for c in registry.channels_for(code, "warning")] == [ops.channel_id]
    assert [c.channel_id for c in registry.channels_for(None, "critical")] == [ops.channel_id]
    registry.update_channel(mine.channel_id, at=T0, enabled=False)
    assert [c.channel_id for c in registry.channels_for(code, "critical")] == [ops.channel_id]
    assert [c.name for c in registry.list_channels("c1")] == ["c1 hook"]
    assert [c.name for c in registry.list_channels()] == ["ops"]
    assert len(registry.list_channels(include_all=True)) == 3
    for kwargs, reason in (({"kind": "sms"}, "channel kind"), ({"language": "fr"}, "ja or en"),
                           ({"customer_id": "nobody"}, "no customer"), ({"group_wait_s": -1}, "group_wait_s")):
        args = {"kind": "webhook", "name": "x", "config": {}, "at": T0, **kwargs}
        with pytest.raises(RegistryError, match=reason):
            registry.create_channel(**args)  # type: ignore[arg-type]
    assert registry.delete_channel(ops.channel_id) and registry.get_channel(ops.channel_id) is None


def test_a_v5_registry_gains_the_alerting_tables_and_event_columns(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v5.db")
    registry.migrate()
    registry.open_event(kind="gateway_offline", at=T0, message="old", gateway_id="gw-1")
    with registry.engine.begin() as conn:
        for table in (t.alert_rules, t.alerts, t.event_happenings, t.cursors, t.notification_channels,
                      t.notification_queue, t.deliveries):
            table.drop(conn)
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_events_alert_id")
        for column in t.EVENT_COLUMNS_V6:
            conn.exec_driver_sql(f"ALTER TABLE events DROP COLUMN {column}")
        conn.execute(update(t.schema_version).values(version=5))
    assert upgrade(registry.engine) == 5
    assert registry.schema_version() == t.SCHEMA_VERSION
    old = registry.list_events()[0]
    assert (old.message, old.params, old.alert_id) == ("old", {}, None)
    assert len(registry.list_alert_rules()) == len(DEFAULT_RULES)
    registry.close()
