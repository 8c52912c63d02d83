"""Who may do what: the principal of the request, the admin check and a customer's plant scope.

Both checks raise a ProblemError, so a view states them in one line and the app's problem handler
answers. They are calls, not decorators, because their order matters: a plant route checks the
customer's scope (404) before the admin role (403), so that a customer cannot learn whether
another customer's plant exists.
"""

from __future__ import annotations

from flask import g, request

from pms_api.console_session import live_user_id
from pms_api.problems import ProblemError
from pms_registry import Registry
from pms_registry.records import Plant, Principal


def principal_of_request(registry: Registry) -> Principal | None:
    """Whom the request's Bearer API key, or (for a GET without an Authorization header) its console
    login session, speaks for; None when neither holds."""
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    found = registry.authenticate(secret.strip()) if scheme.lower() == "bearer" and secret.strip() else None
    user_id = live_user_id() if found is None and not header and request.method == "GET" else None
    if user_id is not None:
        # The console's own pages read the API with their login session (while it lasts); reads
        # only, so a forged cross-site request can change nothing (and SameSite=Lax keeps the cookie home).
        user = registry.get_user_by_id(user_id)
        if user is not None:
            found = Principal(key_id=f"user:{user.user_id}", customer_id=user.customer_id, role=user.role,
                              can_write=user.can_write)
    return found


def principal() -> Principal:
    """Who is asking: set by the API's authentication hook before any view runs."""
    found: Principal = g.principal
    return found


def require_admin() -> None:
    """Raise a 403 problem unless the request comes with an admin key."""
    if not principal().is_admin:
        raise ProblemError(403, "only an admin key may do this")


def require_operator() -> None:
    """Raise a 403 problem unless an admin or an operator asks with a key that may write.

    Operators change the plants, gateways, notices and alerts of their customer scope (the view still
    checks the scope); viewers and read-scoped keys are refused earlier, for any change, by
    `refuse_read_only`."""
    if principal().role not in ("admin", "operator") or not principal().can_write:
        raise ProblemError(403, "only an admin or an operator may do this")


def refuse_read_only() -> None:
    """Every change (any method but GET/HEAD/OPTIONS) by a viewer or a read-scoped key is a 403,
    whatever the route: one check, so no new route can forget it."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and not principal().can_write:
        raise ProblemError(403, "this key or user may only read (a viewer, or a key with scope read)")


def plant_in_scope(registry: Registry, service_code: str, customer_id: str | None) -> Plant:
    """The plant, if the customer (None: an admin) may see it; else a 404 problem, the same for
    another customer's plant as for none, so that existence does not leak."""
    plant = registry.get_plant(service_code, customer_id)
    if plant is None:
        raise ProblemError(404, f"no plant {service_code}")
    return plant


def actor_of(registry: Registry) -> str:
    """Who asks, for the audit log: `key:{label}` of an API key, `user:{username}` of a console login."""
    key_id = principal().key_id
    if key_id.startswith("user:"):
        user = registry.get_user_by_id(int(key_id.removeprefix("user:")))
        return f"user:{user.username}" if user is not None else key_id
    label = next((key.label for key in registry.list_api_keys() if key.key_id == key_id), key_id)
    return f"key:{label}"
