"""/api/v1 customers, console users and API keys: admin keys only."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from pms_api.access import principal, require_admin
from pms_api.jsonout import json_response
from pms_api.models import (
    ApiKeyIn,
    ApiKeyOut,
    ApiKeyPage,
    CustomerIn,
    CustomerOut,
    CustomerPage,
    KeyPath,
    NewApiKey,
    PageQuery,
    Problem,
    UserIn,
    UserOut,
    UserPage,
    UserPath,
)
from pms_api.problems import InvalidRequest, ProblemError
from pms_common import timeutil
from pms_registry import Registry, RegistryError

ADMIN = Tag(name="admin", description="Customers, console users and API keys (admin keys only)")
ADMIN_ONLY: dict[Any, Any] = {403: Problem}


def add_admin_routes(api: APIBlueprint, registry: Registry) -> None:
    @api.get("/customers", tags=[ADMIN], responses={200: CustomerPage, **ADMIN_ONLY})
    def list_customers(query: PageQuery) -> Response:
        """Customers."""
        require_admin()
        customers = registry.list_customers()
        page = customers[query.offset : query.offset + query.limit]
        return json_response(CustomerPage(items=[CustomerOut(**asdict(c)) for c in page], total=len(customers),
                                          limit=query.limit, offset=query.offset))

    @api.post("/customers", tags=[ADMIN], responses={201: CustomerOut, 409: Problem, **ADMIN_ONLY})
    def create_customer(body: CustomerIn) -> Response:
        """Register a customer; an existing customer ID answers 409."""
        require_admin()
        if any(c.customer_id == body.customer_id for c in registry.list_customers()):
            raise ProblemError(409, f"customer {body.customer_id} exists already")
        registry.ensure_customer(body.customer_id, body.name)
        return json_response(CustomerOut(customer_id=body.customer_id, name=body.name), 201)

    @api.get("/users", tags=[ADMIN], responses={200: UserPage, **ADMIN_ONLY})
    def list_users(query: PageQuery) -> Response:
        """Console users (never their passwords)."""
        require_admin()
        users = registry.list_users()
        page = users[query.offset : query.offset + query.limit]
        return json_response(UserPage(items=[UserOut(**asdict(u)) for u in page], total=len(users),
                                      limit=query.limit, offset=query.offset))

    @api.post("/users", tags=[ADMIN], responses={201: UserOut, 409: Problem, **ADMIN_ONLY})
    def create_user(body: UserIn) -> Response:
        """Add a console user: an admin (no customer_id) or one customer's user."""
        require_admin()
        if registry.get_user(body.username) is not None:
            raise ProblemError(409, f"user {body.username} exists already")
        try:
            user = registry.create_user(created_at=timeutil.now_jst(), **body.model_dump())
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        return json_response(UserOut(**asdict(user)), 201)

    @api.delete("/users/<username>", tags=[ADMIN], responses={204: None, **ADMIN_ONLY})
    def delete_user(path: UserPath) -> Response:
        """Remove a console user; their open sessions end with their next request."""
        require_admin()
        if not registry.delete_user(path.username):
            raise ProblemError(404, f"no user {path.username}")
        return Response(status=204)

    @api.get("/keys", tags=[ADMIN], responses={200: ApiKeyPage, **ADMIN_ONLY})
    def list_keys(query: PageQuery) -> Response:
        """API keys (their records: secrets are never stored)."""
        require_admin()
        keys = registry.list_api_keys()
        page = keys[query.offset : query.offset + query.limit]
        return json_response(ApiKeyPage(items=[ApiKeyOut(**asdict(k)) for k in page], total=len(keys),
                                        limit=query.limit, offset=query.offset))

    @api.post("/keys", tags=[ADMIN], responses={201: NewApiKey, **ADMIN_ONLY})
    def create_key(body: ApiKeyIn) -> Response:
        """Issue a key for a customer (or an admin key); the answer holds its secret, shown this once."""
        require_admin()
        if body.customer_id is not None and all(c.customer_id != body.customer_id for c in registry.list_customers()):
            raise InvalidRequest(f"no customer {body.customer_id}")
        secret = registry.create_api_key(label=body.label, customer_id=body.customer_id,
                                         created_at=timeutil.now_jst())
        key_id = registry.key_id_of(secret)
        record = next(k for k in registry.list_api_keys() if k.key_id == key_id)
        return json_response(NewApiKey(**asdict(record), secret=secret), 201)

    @api.delete("/keys/<key_id>", tags=[ADMIN], responses={204: None, **ADMIN_ONLY})
    def revoke_key(path: KeyPath) -> Response:
        """Revoke a key; a revoked key authenticates nothing. An admin cannot revoke the key it calls with."""
        require_admin()
        if path.key_id == principal().key_id:
            raise ProblemError(409, "this is the key of this request: revoke it with another admin key")
        if not registry.revoke_api_key_by_id(path.key_id):
            raise ProblemError(404, f"no key {path.key_id}")
        return Response(status=204)
