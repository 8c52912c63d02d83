"""Plant changes as the API and the console both make them: who may change which plant, retiring (with
its gateways' broker logins revoked), and a tariff added by a person, so a form and a REST call take the
same steps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from prometheus_client import Counter

from pms_api.gateway_actions import bind
from pms_api.problems import ProblemError
from pms_common import timeutil
from pms_registry import Registry, RegistryError
from pms_registry.records import Plant, User
from pms_registry.tariffs import Tariff

# Bad input to the plant pages and routes, by what was refused (form, tariff); CSV rows count in plant_csv.
INPUT_REFUSED = Counter("pms_api_plant_input_refused_total", "Plant forms and tariffs refused as invalid", ["what"])


def may_change_plants(user: User) -> bool:
    """Admins and operators change plants; viewers only read."""
    return user.role in ("admin", "operator") and user.can_write


def refuse_other_customer(scope: str | None, customer_id: str) -> None:
    """An operator of one customer registers or moves plants only within it (None: every customer)."""
    if scope is not None and customer_id != scope:
        raise ProblemError(403, f"customer_id: you may manage the plants of customer {scope} only")


def retire(registry: Registry, plant: Plant, actor: str) -> Plant:
    """Retire the plant: its gateways are unbound first, through the same step as an operator's unbind
    (their broker logins are revoked and it is audited), then the plant leaves lists and alerting."""
    for gateway_id in plant.gateway_ids:
        bind(registry, gateway_id, None, actor=actor)
    return registry.retire_plant(plant.service_code, timeutil.now_jst(), actor)


def add_tariff(registry: Registry, service_code: str, *, effective_from: date | None, yen_per_kwh: float,
               bands: Sequence[dict[str, Any]] | None, actor: str) -> Tariff:
    """A new price from a future JST day (RegistryError when the rules refuse it, naming the field)."""
    now = timeutil.now_jst()
    try:
        return registry.add_tariff(service_code, effective_from=effective_from, yen_per_kwh=yen_per_kwh, bands=bands,
                                   at=now, actor=actor, today=now.date())
    except RegistryError:
        INPUT_REFUSED.labels("tariff").inc()
        raise
