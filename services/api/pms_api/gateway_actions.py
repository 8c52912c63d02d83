"""What an operator does to a gateway, whichever door it comes through: a REST call or a console form.

Both doors validate with the same request models (gateway_control_models) and come here, so a push
or a command is audited, versioned and queued the same way. The API only writes the registry;
device-manager publishes from it within about a second and records what the gateway answers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pms_api.gateway_control_models import CommandIn, ConfigIn
from pms_common import timeutil
from pms_common.messages import CONFIG_DEFAULTS
from pms_registry import Registry, RegistryError
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


def bind(registry: Registry, gateway_id: str, service_code: str | None, *, actor: str,
         replace: bool = False) -> list[str]:
    """Bind the gateway to the plant from now on (None: unbind); with `replace`, the plant's other
    gateways are unbound. A gateway left bound to nothing loses its broker identity at once
    (device-manager revokes it: its client is disconnected); it comes back only by claiming anew, as
    an unbound gateway. Moving a gateway between plants keeps its identity. Returns the unbound ones.
    RegistryError when the binding cannot be made (a decommissioned gateway, a retired plant)."""
    now = timeutil.now_jst()
    target = registry.get_plant(service_code) if service_code is not None else None
    if target is not None and target.retired_at is not None:
        raise RegistryError(f"plant {service_code} is retired: no gateway may be bound to it")
    left = registry.bind_gateway(gateway_id, service_code, at=now, replace=replace)
    revoked = [gone for gone in left if _revoke(registry, gone, f"unbound by {actor}", now)]
    registry.record_audit(at=now, actor=actor, action="bind", target=gateway_id,
                          detail={"service_code": service_code, "replace": replace, "unbound": left,
                                  "revoked": revoked},
                          outcome="bound" if service_code is not None else "unbound")
    return left


def decommission(registry: Registry, gateway_id: str, *, actor: str) -> None:
    """Take the gateway out of service for good: its binding closes (its history stays with the plants
    it served), its broker identity is revoked, and its serial may not claim again."""
    now = timeutil.now_jst()
    registry.decommission_gateway(gateway_id, at=now)
    factory = registry.factory_gateway_of(gateway_id)
    if factory is not None:
        registry.block_factory_gateway(factory.serial, "decommissioned")
    revoked = _revoke(registry, gateway_id, f"decommissioned by {actor}", now)
    registry.record_audit(at=now, actor=actor, action="decommission", target=gateway_id,
                          detail={"serial_blocked": factory is not None, "revoked": revoked}, outcome="decommissioned")


def _revoke(registry: Registry, gateway_id: str, reason: str, at: datetime) -> bool:
    """Ask for the revocation of the gateway's broker login, if it has one (a gateway configured by
    hand, outside provisioning, has none to revoke)."""
    login = registry.broker_login(gateway_id)
    if login is None or login.state == "revoked":
        return False
    registry.request_revocation(gateway_id, reason, at)
    return True
