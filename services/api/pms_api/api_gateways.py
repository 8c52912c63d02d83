"""/api/v1/gateways: the fleet's status (list and one gateway), binding to plants, decommissioning."""

from __future__ import annotations

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from pms_api.access import actor_of, principal, require_admin
from pms_api.gateway_actions import bind, decommission
from pms_api.gateway_models import GatewayDetail, GatewayOut, GatewayPage, GatewayQuery
from pms_api.gateway_status import GatewayStatus
from pms_api.jsonout import json_response
from pms_api.models import GatewayBinding, GatewayPath, Problem
from pms_api.problems import InvalidRequest, ProblemError
from pms_registry import Registry, RegistryError

GATEWAYS = Tag(name="gateways", description="Gateways: where they serve, their presence and health")


def add_gateway_routes(api: APIBlueprint, registry: Registry) -> None:
    status = GatewayStatus(registry)

    def shown(gateway_id: str) -> GatewayDetail:
        found = status.detail(gateway_id, principal().customer_id)
        if found is None:  # the same for another customer's gateway as for none: existence does not leak
            raise ProblemError(404, f"no gateway {gateway_id}")
        return found

    @api.get("/gateways", tags=[GATEWAYS], responses={200: GatewayPage})
    def list_gateways(query: GatewayQuery) -> Response:
        """Gateways with their plant, condition and latest health; a customer's key sees only the
        gateways bound to its plants. Filter by `status` (condition) and, for admins, `customer_id`."""
        gateways = status.listing(principal().customer_id, condition=query.status, of_customer=query.customer_id)
        page = gateways[query.offset : query.offset + query.limit]
        return json_response(GatewayPage(items=page, total=len(gateways), limit=query.limit, offset=query.offset))

    @api.get("/gateways/<gateway_id>", tags=[GATEWAYS], responses={200: GatewayDetail})
    def get_gateway(path: GatewayPath) -> Response:
        """One gateway: binding (plant, since), condition, last seen, health, the plants it served and
        its recent online/offline history."""
        return json_response(shown(path.gateway_id))

    @api.put("/gateways/<gateway_id>", tags=[GATEWAYS], responses={200: GatewayOut, 403: Problem})
    def bind_gateway(path: GatewayPath, body: GatewayBinding) -> Response:
        """Bind a gateway to a plant from now on, or unbind it with null (admin); an unknown gateway is
        registered. Its earlier readings stay with the plant it served then. Unbinding revokes its
        broker identity at once (it is disconnected and must claim anew)."""
        require_admin()
        if body.service_code is not None and registry.get_plant(body.service_code) is None:
            raise InvalidRequest(f"no plant {body.service_code}")
        try:
            bind(registry, path.gateway_id, body.service_code, actor=actor_of(registry))
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        return json_response(GatewayOut(**shown(path.gateway_id).model_dump()))

    @api.post("/gateways/<gateway_id>/decommission", tags=[GATEWAYS],
              responses={200: GatewayOut, 403: Problem})
    def decommission_gateway(path: GatewayPath) -> Response:
        """Take a gateway out of service (admin): its binding closes, its history stays with the plants
        it served, it counts nowhere and cannot be bound again; its broker identity is revoked and its
        serial may not claim again."""
        require_admin()
        if registry.get_gateway(path.gateway_id) is None:
            raise ProblemError(404, f"no gateway {path.gateway_id}")
        decommission(registry, path.gateway_id, actor=actor_of(registry))
        return json_response(GatewayOut(**shown(path.gateway_id).model_dump()))
