"""/api/v1 customers, console users and API keys.

Customers and users are managed by admins only (an operator runs plants, not people). API keys:
an admin issues keys for anyone; every other user makes and revokes its own. A key never has more
power than its user: it speaks with the user's role and customer, narrowed to its scope, so a
viewer's keys are read-only. Making or revoking a key is a change, so a read-scoped key cannot do
it (`refuse_read_only`): a leaked read key cannot mint itself a successor. A viewer, whose keys
are all read-scoped, manages its keys in the console, where its password-checked login speaks.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
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
    CustomerPatch,
    CustomerPath,
    KeyPath,
    KeyQuery,
    NewApiKey,
    PageQuery,
    Problem,
    UserIn,
    UserOut,
    UserPage,
    UserPatch,
    UserPath,
)
from pms_api.problems import InvalidRequest, ProblemError
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.records import ApiKey, User

ADMIN = Tag(name="admin", description="Customers and console users (admins only)")
KEYS = Tag(name="keys", description="API keys: admins issue them for anyone, every user makes and revokes its own")
ADMIN_ONLY: dict[Any, Any] = {403: Problem}


def requesting_user(registry: Registry) -> User | None:
    """The user the request speaks for: its console login, or the owner of its API key (None for a
    key made before keys had users)."""
    key_id = principal().key_id
    if key_id.startswith("user:"):
        return registry.get_user_by_id(int(key_id.removeprefix("user:")))
    key = registry.get_api_key(key_id)
    return None if key is None or key.user_id is None else registry.get_user_by_id(key.user_id)


def issue_key(registry: Registry, owner: User, *, label: str, scope: str, expires_in_days: int) -> tuple[str, ApiKey]:
    """A new key of `owner` (the console's form and the API's POST alike): its secret, shown once,
    and its record. A viewer's key can only read."""
    if owner.role == "viewer" and scope != "read":
        raise InvalidRequest("scope: a viewer's keys can only read (scope read)")
    now = timeutil.now_jst()
    secret = registry.create_api_key(label=label, created_at=now, user_id=owner.user_id,
                                     scope="read" if scope == "read" else "write",
                                     expires_at=now + timedelta(days=expires_in_days))
    record = registry.get_api_key(registry.key_id_of(secret) or "")
    assert record is not None
    return secret, record


def add_admin_routes(api: APIBlueprint, registry: Registry) -> None:
    # ---- customers -----------------------------------------------------------------------------------
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
        if registry.get_customer(body.customer_id) is not None:
            raise ProblemError(409, f"customer {body.customer_id} exists already")
        registry.ensure_customer(body.customer_id, body.name)
        return json_response(CustomerOut(customer_id=body.customer_id, name=body.name), 201)

    @api.patch("/customers/<customer_id>", tags=[ADMIN], responses={200: CustomerOut, 404: Problem, **ADMIN_ONLY})
    def rename_customer(path: CustomerPath, body: CustomerPatch) -> Response:
        """Rename a customer (its ID, which plants, users and keys refer to, stays)."""
        require_admin()
        try:
            found = registry.update_customer(path.customer_id, name=body.name)
        except RegistryError as exc:
            raise InvalidRequest(f"name: {exc}") from exc
        if not found:
            raise ProblemError(404, f"no customer {path.customer_id}")
        return json_response(CustomerOut(customer_id=path.customer_id, name=body.name.strip()))

    # ---- users ---------------------------------------------------------------------------------------
    @api.get("/users", tags=[ADMIN], responses={200: UserPage, **ADMIN_ONLY})
    def list_users(query: PageQuery) -> Response:
        """Console users with their role, customer and lockout (never their passwords)."""
        require_admin()
        users = registry.list_users()
        page = users[query.offset : query.offset + query.limit]
        return json_response(UserPage(items=[UserOut(**asdict(u)) for u in page], total=len(users),
                                      limit=query.limit, offset=query.offset))

    @api.post("/users", tags=[ADMIN], responses={201: UserOut, 409: Problem, **ADMIN_ONLY})
    def create_user(body: UserIn) -> Response:
        """Add a console user: an admin, an operator (of one customer, or of all) or a viewer of one customer."""
        require_admin()
        if registry.get_user(body.username) is not None:
            raise ProblemError(409, f"user {body.username} exists already")
        try:
            user = registry.create_user(created_at=timeutil.now_jst(), **body.model_dump())
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        return json_response(UserOut(**asdict(user)), 201)

    @api.patch("/users/<username>", tags=[ADMIN], responses={200: UserOut, 404: Problem, **ADMIN_ONLY})
    def update_user(path: UserPath, body: UserPatch) -> Response:
        """Change a user's role, customer, language or password; the role must fit the customer."""
        require_admin()
        if registry.get_user(path.username) is None:
            raise ProblemError(404, f"no user {path.username}")
        me = requesting_user(registry)
        if me is not None and me.username == path.username and body.role not in (None, "admin"):
            raise ProblemError(409, "an admin cannot take away its own admin role: ask another admin")
        try:
            user = registry.update_user(path.username, **body.model_dump(exclude_unset=True))
        except RegistryError as exc:
            raise InvalidRequest(str(exc)) from exc
        return json_response(UserOut(**asdict(user)))

    @api.post("/users/<username>/unlock", tags=[ADMIN], responses={200: UserOut, 404: Problem, **ADMIN_ONLY})
    def unlock_user(path: UserPath) -> Response:
        """Lift a user's console lockout (after too many wrong passwords) before it runs out."""
        require_admin()
        if not registry.unlock_user(path.username):
            raise ProblemError(404, f"no user {path.username}")
        user = registry.get_user(path.username)
        assert user is not None
        return json_response(UserOut(**asdict(user)))

    @api.delete("/users/<username>", tags=[ADMIN], responses={204: None, **ADMIN_ONLY})
    def delete_user(path: UserPath) -> Response:
        """Remove a console user; their open sessions end with their next request, their keys stop working."""
        require_admin()
        me = requesting_user(registry)
        if me is not None and me.username == path.username:
            raise ProblemError(409, "an admin cannot delete itself: ask another admin")
        if not registry.delete_user(path.username):
            raise ProblemError(404, f"no user {path.username}")
        return Response(status=204)

    # ---- API keys ------------------------------------------------------------------------------------
    @api.get("/keys", tags=[KEYS], responses={200: ApiKeyPage})
    def list_keys(query: KeyQuery) -> Response:
        """API keys' records (never their secrets, which are not stored): an admin's all (or one user's),
        anyone else's its own."""
        if principal().is_admin:
            owner = registry.get_user(query.username) if query.username else None
            if query.username and owner is None:
                raise ProblemError(404, f"no user {query.username}")
            keys = registry.list_api_keys(user_id=owner.user_id if owner else None)
        else:
            me = requesting_user(registry)
            keys = [] if me is None else registry.list_api_keys(user_id=me.user_id)
        page = keys[query.offset : query.offset + query.limit]
        return json_response(ApiKeyPage(items=[ApiKeyOut(**asdict(k)) for k in page], total=len(keys),
                                        limit=query.limit, offset=query.offset))

    @api.post("/keys", tags=[KEYS], responses={201: NewApiKey, 403: Problem})
    def create_key(body: ApiKeyIn) -> Response:
        """Issue a key with a scope and an expiry (default 90 days, at most 365); the answer holds its
        secret, shown this once. An admin names any user (or, without one, a customer for a key of no
        user); anyone else makes its own."""
        me = requesting_user(registry)
        if principal().is_admin and body.username is not None:
            owner = registry.get_user(body.username)
            if owner is None:
                raise InvalidRequest(f"username: no user {body.username}")
        elif principal().is_admin and (me is None or body.customer_id is not None):
            if body.customer_id is not None and registry.get_customer(body.customer_id) is None:
                raise InvalidRequest(f"customer_id: no customer {body.customer_id}")
            now = timeutil.now_jst()
            secret = registry.create_api_key(label=body.label, customer_id=body.customer_id, created_at=now,
                                             scope=body.scope, expires_at=now + timedelta(days=body.expires_in_days))
            record = registry.get_api_key(registry.key_id_of(secret) or "")
            assert record is not None
            return json_response(NewApiKey(**asdict(record), secret=secret), 201)
        else:
            if me is None:
                raise ProblemError(403, "this key belongs to no user: ask an admin for keys")
            if body.username not in (None, me.username) or body.customer_id is not None:
                raise ProblemError(403, "only an admin makes keys for others")
            owner = me
        secret, record = issue_key(registry, owner, label=body.label, scope=body.scope,
                                   expires_in_days=body.expires_in_days)
        return json_response(NewApiKey(**asdict(record), secret=secret), 201)

    @api.delete("/keys/<key_id>", tags=[KEYS], responses={204: None, 404: Problem, 409: Problem})
    def revoke_key(path: KeyPath) -> Response:
        """Revoke a key (an admin any key, anyone else its own); a revoked key authenticates nothing.
        The key a request calls with cannot revoke itself."""
        if path.key_id == principal().key_id:
            raise ProblemError(409, "this is the key of this request: revoke it with another key or the console")
        key = registry.get_api_key(path.key_id)
        me = requesting_user(registry)
        mine = key is not None and me is not None and key.user_id == me.user_id
        if key is None or not (principal().is_admin or mine):
            raise ProblemError(404, f"no key {path.key_id}")  # another's key answers as none
        registry.revoke_api_key_by_id(path.key_id)
        return Response(status=204)
