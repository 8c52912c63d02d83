"""/api/v1 gateway control: desired configurations (one gateway or a group), tags, commands with
deadlines, and the audit log.

The API only writes the registry; device-manager publishes from it (within about a second) and
records what the gateways answer. Every push and command is audited with who asked (the API key's
label or the console user's name), and the entry's outcome follows the command or push to its end.

Who may: an admin anything; a customer the gateways bound to its plants, and its own customer
group. Tags and tag groups span customers, so they are the admin's.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_openapi3 import APIBlueprint, Tag
from prometheus_client import Counter

from pms_api.access import actor_of, principal, require_admin
from pms_api.gateway_actions import push_config, queue_command
from pms_api.gateway_control_models import (
    AuditOut,
    AuditPage,
    AuditQuery,
    CommandIn,
    CommandOut,
    CommandPage,
    CommandPath,
    ConfigDocument,
    ConfigIn,
    DesiredConfigOut,
    GatewayConfigOut,
    GroupConfigOut,
    GroupMember,
    GroupOut,
    GroupPath,
    ReportedConfigOut,
    TagsIn,
    TagsOut,
)
from pms_api.jsonout import json_response
from pms_api.models import GatewayPath, PageQuery, Problem
from pms_api.problems import InvalidRequest, ProblemError
from pms_common import timeutil
from pms_common.messages import CONFIG_DEFAULTS
from pms_registry import Registry, RegistryError
from pms_registry.gateway_control import CUSTOMER_GROUP, CommandRecord, ConfigState

CONTROL = Tag(name="gateway control", description="Config push, tags and groups, commands, the audit log")
REFUSED = Counter("pms_api_gateway_control_refused_total",
                  "Gateway control requests refused as invalid (bad config, command or group)", ["endpoint"])
ANSWERS: dict[Any, Any] = {403: Problem}
# The views whose refusals REFUSED counts (filled as they are declared).
_COUNTED: set[str] = set()


def gateway_in_scope(registry: Registry, gateway_id: str) -> None:
    """404 unless the gateway exists and the asker may see it (the same answer for both, so a customer
    cannot learn of another's gateways)."""
    if not any(gw.gateway_id == gateway_id for gw in registry.list_gateways(principal().customer_id)):
        raise ProblemError(404, f"no gateway {gateway_id}")


def group_in_scope(group: str) -> None:
    customer_id = principal().customer_id
    if customer_id is not None and group != f"{CUSTOMER_GROUP}{customer_id}":
        raise ProblemError(403, "a customer key may address its own group customer:{its customer ID} only")


def config_out(state: ConfigState) -> GatewayConfigOut:
    desired = state.desired
    reported = state.reported
    return GatewayConfigOut(
        gateway_id=state.gateway_id,
        desired=None if desired is None else DesiredConfigOut(
            version=desired.version, document=ConfigDocument(**desired.document), updated_at=desired.updated_at,
            updated_by=desired.updated_by, published=desired.published_version == desired.version),
        reported=None if reported is None else ReportedConfigOut(
            version=reported.version, document=ConfigDocument.model_validate(reported.document),
            reported_at=reported.reported_at),
        drift=state.drift,
    )


def command_out(command: CommandRecord) -> CommandOut:
    return CommandOut(**{name: getattr(command, name) for name in CommandOut.model_fields})


def add_gateway_control_routes(api: APIBlueprint, registry: Registry) -> None:
    def counted(view: Any) -> Any:
        _COUNTED.add(f"{api.name}.{view.__name__}")
        return view

    @api.after_request
    def count_refusals(response: Response) -> Response:
        if response.status_code in (400, 422) and request.endpoint in _COUNTED:
            REFUSED.labels(request.endpoint.rsplit(".", 1)[-1]).inc()
        return response

    # ---- configuration -------------------------------------------------------------------------
    @api.get("/gateways/<gateway_id>/config", tags=[CONTROL], responses={200: GatewayConfigOut})
    def get_gateway_config(path: GatewayPath) -> Response:
        """The gateway's desired and reported configuration, and whether they drift apart."""
        gateway_in_scope(registry, path.gateway_id)
        return json_response(config_out(registry.config_state(path.gateway_id)))

    @api.put("/gateways/<gateway_id>/config", tags=[CONTROL], responses={200: GatewayConfigOut, **ANSWERS})
    @counted
    def put_gateway_config(path: GatewayPath, body: ConfigIn) -> Response:
        """Push a configuration: a new desired version (settings left out keep theirs); device-manager
        publishes it retained and the gateway applies it without a restart."""
        gateway_in_scope(registry, path.gateway_id)
        push_config(registry, path.gateway_id, body, actor=actor_of(registry))
        return json_response(config_out(registry.config_state(path.gateway_id)))

    @api.put("/gateway-groups/<group>/config", tags=[CONTROL], responses={200: GroupConfigOut, **ANSWERS})
    @counted
    def put_group_config(path: GroupPath, body: ConfigIn) -> Response:
        """Push a configuration to every gateway of a group (a tag, or customer:{customer_id}) in one
        call: each gets a new desired version."""
        if not path.group.startswith(CUSTOMER_GROUP):
            require_admin()
        group_in_scope(path.group)
        members = registry.group_members(path.group)
        if not members:
            raise InvalidRequest(f"group {path.group} has no gateways")
        now, actor = timeutil.now_jst(), actor_of(registry)
        pushed = registry.set_desired_config(members, body.changes(), defaults=CONFIG_DEFAULTS, at=now, by=actor)
        # One entry for the call; each member's progress is its drift (GET /gateway-groups/{group}).
        audit_id = registry.record_audit(at=now, actor=actor, action="group_config", target=f"group:{path.group}",
                                         detail={**body.changes(), "gateways": len(pushed)},
                                         outcome=f"new desired version for {len(pushed)} gateways")
        return json_response(GroupConfigOut(group=path.group, gateways=len(pushed), audit_id=audit_id))

    @api.get("/gateway-groups/<group>", tags=[CONTROL], responses={200: GroupOut, **ANSWERS})
    @counted
    def get_group(path: GroupPath) -> Response:
        """A group's members with their desired and reported versions, and how many drift."""
        if not path.group.startswith(CUSTOMER_GROUP):
            require_admin()
        group_in_scope(path.group)
        states = registry.config_states(registry.group_members(path.group))
        members = [GroupMember(gateway_id=s.gateway_id, desired_version=s.desired.version if s.desired else None,
                               reported_version=s.reported.version if s.reported else None, drift=s.drift)
                   for s in states]
        drifting = sum(m.drift for m in members)
        no_desired = sum(m.desired_version is None for m in members)
        return json_response(GroupOut(group=path.group, members=members, total=len(members), drifting=drifting,
                                      in_sync=len(members) - drifting - no_desired, no_desired=no_desired))

    @api.put("/gateways/<gateway_id>/tags", tags=[CONTROL], responses={200: TagsOut, **ANSWERS})
    @counted
    def put_gateway_tags(path: GatewayPath, body: TagsIn) -> Response:
        """Replace the gateway's tags (admin): the groups a configuration can be pushed to."""
        require_admin()
        gateway_in_scope(registry, path.gateway_id)
        try:
            tags = registry.set_gateway_tags(path.gateway_id, body.tags)
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        registry.record_audit(at=timeutil.now_jst(), actor=actor_of(registry), action="tags", target=path.gateway_id,
                              detail={"tags": tags}, outcome="set")
        return json_response(TagsOut(gateway_id=path.gateway_id, tags=tags))

    @api.get("/gateways/<gateway_id>/tags", tags=[CONTROL], responses={200: TagsOut})
    def get_gateway_tags(path: GatewayPath) -> Response:
        """The gateway's tags."""
        gateway_in_scope(registry, path.gateway_id)
        return json_response(TagsOut(gateway_id=path.gateway_id, tags=registry.gateway_tags(path.gateway_id)))

    # ---- commands ------------------------------------------------------------------------------
    @api.post("/gateways/<gateway_id>/commands", tags=[CONTROL], responses={202: CommandOut, **ANSWERS})
    @counted
    def post_command(path: GatewayPath, body: CommandIn) -> Response:
        """Queue a command: it goes out while the gateway is online and before its deadline (now +
        timeout_s); follow it with GET .../commands/{command_id} until succeeded, failed or expired."""
        gateway_in_scope(registry, path.gateway_id)
        command = queue_command(registry, path.gateway_id, body, actor=actor_of(registry))
        response = json_response(command_out(command), 202)
        response.headers["Location"] = f"{request.path}/{command.command_id}"
        return response

    @api.get("/gateways/<gateway_id>/commands/<command_id>", tags=[CONTROL], responses={200: CommandOut})
    def get_command(path: CommandPath) -> Response:
        """A command's state, with the gateway's result or, in a sentence, why it failed or expired."""
        gateway_in_scope(registry, path.gateway_id)
        command = registry.get_command(path.command_id, path.gateway_id)
        if command is None:
            raise ProblemError(404, f"no command {path.command_id} for {path.gateway_id}")
        return json_response(command_out(command))

    @api.get("/gateways/<gateway_id>/commands", tags=[CONTROL], responses={200: CommandPage})
    def list_commands(path: GatewayPath, query: PageQuery) -> Response:
        """The gateway's commands, newest first."""
        gateway_in_scope(registry, path.gateway_id)
        items, total = registry.list_commands(path.gateway_id, limit=query.limit, offset=query.offset)
        return json_response(CommandPage(items=[command_out(c) for c in items], total=total, limit=query.limit,
                                         offset=query.offset))

    # ---- audit log -----------------------------------------------------------------------------
    @api.get("/audit", tags=[CONTROL], responses={200: AuditPage, **ANSWERS})
    def list_audit(query: AuditQuery) -> Response:
        """Who pushed which configuration and ran which command, when, and what came of it (admin)."""
        require_admin()
        items, total = registry.list_audit(target=query.target, action=query.action, limit=query.limit,
                                           offset=query.offset)
        return json_response(AuditPage(items=[AuditOut(**vars(e)) for e in items], total=total, limit=query.limit,
                                       offset=query.offset))
