"""Gateway control in the registry (config versions, drift, groups, command states, the audit log), on
SQLite files and on the real PostgreSQL (127.0.0.1:5432, a scratch database per test)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pms_registry import schema as t
from pms_registry.gateway_control import NO_ANSWER_REASON, OFFLINE_REASON, PENDING
from pms_registry.migrations import _v3_fleet_management
from pms_registry.registry import Registry, RegistryError
from tests.registry.v1_fixture import T0

DEFAULTS = {"power_interval_s": 60.0, "heartbeat_interval_s": 30.0, "energy_interval_s": 600.0, "log_level": "INFO"}


def test_each_push_bumps_the_version_and_keeps_the_rest_of_the_document(registry: Registry) -> None:
    first = registry.set_desired_config(["gw-1"], {"power_interval_s": 10.0}, defaults=DEFAULTS, at=T0, by="ops")
    assert first["gw-1"].version == 1
    assert first["gw-1"].document == {**DEFAULTS, "power_interval_s": 10.0}
    second = registry.set_desired_config(["gw-1"], {"log_level": "DEBUG"}, defaults=DEFAULTS,
                                         at=T0 + timedelta(seconds=1), by="ops")["gw-1"]
    assert (second.version, second.document["power_interval_s"], second.document["log_level"]) == (2, 10.0, "DEBUG")
    state = registry.config_state("gw-1")
    assert state.drift and state.reported is None  # no report yet is drift
    assert [d.version for d in registry.unpublished_desired_configs()] == [2]
    registry.mark_desired_published([("gw-1", 2)])
    assert registry.unpublished_desired_configs() == []
    registry.record_reported_config("gw-1", 2, {**second.document, "version": 2}, T0 + timedelta(seconds=2))
    state = registry.config_state("gw-1")
    assert not state.drift and state.reported is not None and state.reported.document["log_level"] == "DEBUG"


def test_a_first_push_starts_past_the_version_a_gateway_reports_and_from_its_document(registry: Registry) -> None:
    # A gateway that runs version 7 from before this registry (a restored backup) still takes the push.
    registry.record_reported_config("gw-1", 7, {**DEFAULTS, "energy_interval_s": 300.0}, T0)
    pushed = registry.set_desired_config(["gw-1"], {"power_interval_s": 5.0}, defaults=DEFAULTS, at=T0, by="ops")
    assert pushed["gw-1"].version == 8
    assert pushed["gw-1"].document["energy_interval_s"] == 300.0  # what it runs, not the default


def test_groups_by_tag_and_by_customer(registry: Registry) -> None:
    registry.ensure_customer("c1", "One")
    code = registry.create_plant(customer_id="c1", name="P", address="A", phone="03", created_at=T0)
    registry.bind_gateway("gw-1", code)
    registry.bind_gateway("gw-2", None)
    assert registry.set_gateway_tags("gw-2", ["north", "beta", "north"]) == ["beta", "north"]
    registry.set_gateway_tags("gw-1", ["north"])
    assert registry.gateway_tags("gw-2") == ["beta", "north"]
    assert registry.group_members("north") == ["gw-1", "gw-2"]
    assert registry.group_members("customer:c1") == ["gw-1"]
    assert registry.group_members("customer:nobody") == []
    with pytest.raises(RegistryError, match="a tag is 1-64 lower-case"):
        registry.set_gateway_tags("gw-1", ["Bad Tag"])
    assert registry.gateway_tags("gw-1") == ["north"]  # the refused call changed nothing
    pushed = registry.set_desired_config(registry.group_members("north"), {"heartbeat_interval_s": 15.0},
                                         defaults=DEFAULTS, at=T0, by="ops")
    assert {g: d.version for g, d in pushed.items()} == {"gw-1": 1, "gw-2": 1}
    assert sum(s.drift for s in registry.config_states(["gw-1", "gw-2"])) == 2


def test_command_states_answer_expiry_and_the_audit_outcome(registry: Registry) -> None:
    registry.record_gateway_status("gw-on", "online", T0)
    registry.record_gateway_status("gw-off", "offline", T0)
    commands = {}
    for name, gateway_id in (("answered", "gw-on"), ("silent", "gw-on"), ("offline", "gw-off")):
        audit_id = registry.record_audit(at=T0, actor="ops", action="command", target=gateway_id,
                                         detail={"command": "rejoin"})
        commands[name] = registry.create_command(gateway_id=gateway_id, command="rejoin", args={}, requested_by="ops",
                                                 at=T0, deadline=T0 + timedelta(seconds=10), audit_id=audit_id)
    assert {c.state for c in commands.values()} == {"queued"}
    # Only the online gateway's commands go out.
    assert {c.command_id for c in registry.commands_to_send(T0)} == {commands["answered"].command_id,
                                                                      commands["silent"].command_id}
    assert registry.commands_to_send(T0 + timedelta(seconds=10)) == []  # none past its deadline
    for name in ("answered", "silent"):
        assert registry.mark_command_sent(commands[name].command_id, T0 + timedelta(seconds=1))
    assert not registry.mark_command_sent(commands["answered"].command_id, T0)  # sent once
    done = registry.finish_command(commands["answered"].command_id, ok=True, at=T0 + timedelta(seconds=2),
                                   result={"joins": 2})
    assert done is not None and (done.state, done.result) == ("succeeded", {"joins": 2})
    # Past the deadline: the queued one never reached its offline gateway, the sent one got no answer.
    expired = registry.expire_commands(T0 + timedelta(seconds=11), sent_grace=timedelta(seconds=2))
    assert [c.command_id for c in expired] == [commands["offline"].command_id]  # the sent one has its grace
    expired += registry.expire_commands(T0 + timedelta(seconds=13), sent_grace=timedelta(seconds=2))
    reasons = {c.command_id: (c.state, c.reason) for c in expired}
    assert reasons == {commands["offline"].command_id: ("expired", OFFLINE_REASON),
                       commands["silent"].command_id: ("expired", NO_ANSWER_REASON)}
    # A late answer changes nothing; no command is left open.
    assert registry.finish_command(commands["silent"].command_id, ok=True, at=T0 + timedelta(seconds=20)) is None
    assert registry.expire_commands(T0 + timedelta(days=1)) == []
    items, total = registry.list_commands("gw-on")
    assert total == 2 and {c.state for c in items} == {"succeeded", "expired"}
    entries, total = registry.list_audit(action="command")
    outcomes = {e.target + ":" + e.outcome for e in entries}
    assert total == 3
    assert outcomes == {"gw-on:succeeded", f"gw-on:expired: {NO_ANSWER_REASON}", f"gw-off:expired: {OFFLINE_REASON}"}


def test_a_push_audit_entry_is_marked_applied_when_the_gateway_reports_that_version(registry: Registry) -> None:
    audit_id = registry.record_audit(at=T0, actor="key:ops", action="config", target="gw-1",
                                     detail={"power_interval_s": 5.0})
    registry.set_desired_config(["gw-1"], {"power_interval_s": 5.0}, defaults=DEFAULTS, at=T0, by="key:ops",
                                audit_id=audit_id)
    registry.record_reported_config("gw-1", 0, DEFAULTS, T0)  # still the old one
    assert registry.list_audit(target="gw-1")[0][0].outcome == PENDING
    registry.record_reported_config("gw-1", 1, {**DEFAULTS, "power_interval_s": 5.0}, T0 + timedelta(seconds=3))
    entry = registry.list_audit(target="gw-1")[0][0]
    assert entry.outcome.startswith("applied: version 1") and entry.actor == "key:ops"


def test_a_report_of_the_desired_version_before_its_publish_is_noted_marks_it_published(
        registry: Registry) -> None:
    """The gateway's report can overtake device-manager's note of its own publish: a gateway running the
    desired version got it, so the registry does not say "applied" and "not published" at once."""
    registry.set_desired_config(["gw-1"], {"power_interval_s": 5.0}, defaults=DEFAULTS, at=T0, by="ops")
    registry.record_reported_config("gw-1", 0, DEFAULTS, T0)  # an older version says nothing of the publish
    assert [d.version for d in registry.unpublished_desired_configs()] == [1]
    state = registry.record_reported_config("gw-1", 1, {**DEFAULTS, "power_interval_s": 5.0}, T0)
    assert state.desired is not None and state.desired.published_version == 1 and not state.drift
    assert registry.unpublished_desired_configs() == []
    registry.mark_desired_published([("gw-1", 1)])  # the late note changes nothing
    assert registry.config_state("gw-1").desired.published_version == 1  # type: ignore[union-attr]


def test_a_deadline_before_creation_is_refused(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="deadline must come after"):
        registry.create_command(gateway_id="gw-1", command="rejoin", args={}, requested_by="ops", at=T0, deadline=T0)


def test_a_v2_registry_upgrades_with_the_gateway_control_tables(tmp_path: Path) -> None:
    registry = Registry(f"sqlite:///{tmp_path}/v2.db")
    registry.migrate()
    new_tables = (t.gateway_config_desired, t.gateway_config_reported, t.gateway_tags, t.gateway_commands, t.audit_log)
    with registry.engine.begin() as conn:  # what a v2 registry is: none of them, version 2
        for table in new_tables:
            table.drop(conn)
        conn.execute(t.schema_version.update().values(version=2))
    with registry.engine.begin() as conn:
        _v3_fleet_management(conn)  # the step alone makes them (not only the final create_all)
        assert {table.name for table in new_tables} <= set(registry.engine.dialect.get_table_names(conn))
        conn.execute(t.schema_version.update().values(version=2))
    registry.migrate()
    assert registry.schema_version() == t.SCHEMA_VERSION
    registry.record_audit(at=T0, actor="ops", action="config", target="gw-1", detail={})
    assert registry.list_audit()[1] == 1
    registry.close()
