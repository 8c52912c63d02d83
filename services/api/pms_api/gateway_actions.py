"""What an operator does to a gateway, whichever door it comes through: a REST call or a console form.

Both doors validate with the same request models (gateway_control_models) and come here, so a push
or a command is audited, versioned and queued the same way. The API only writes the registry;
device-manager publishes from it within about a second and records what the gateway answers.
"""

from __future__ import annotations

from datetime import timedelta

from pms_api.gateway_control_models import CommandIn, ConfigIn
from pms_common import timeutil
from pms_common.messages import CONFIG_DEFAULTS
from pms_registry import Registry
from pms_registry.gateway_control import CommandRecord, ConfigState


def push_config(registry: Registry, gateway_id: str, body: ConfigIn, *, actor: str) -> ConfigState:
    """A new desired version for one gateway (settings left out keep theirs); audited, and the entry's
    outcome becomes "applied" when the gateway reports running it."""
    now = timeutil.now_jst()
    audit_id = registry.record_audit(at=now, actor=actor, action="config", target=gateway_id, detail=body.changes())
    registry.set_desired_config([gateway_id], body.changes(), defaults=CONFIG_DEFAULTS, at=now, by=actor,
                                audit_id=audit_id)
    return registry.config_state(gateway_id)


def queue_command(registry: Registry, gateway_id: str, body: CommandIn, *, actor: str) -> CommandRecord:
    """A command queued until the gateway is online and before its deadline (now + timeout_s); audited,
    and the entry's outcome follows the command to its end."""
    now = timeutil.now_jst()
    audit_id = registry.record_audit(at=now, actor=actor, action="command", target=gateway_id,
                                     detail={"command": body.command, "args": body.args, "timeout_s": body.timeout_s})
    return registry.create_command(gateway_id=gateway_id, command=body.command, args=body.args, requested_by=actor,
                                   at=now, deadline=now + timedelta(seconds=body.timeout_s), audit_id=audit_id)
