"""Changes to customers after they are registered (registration and listing are in `registry`)."""

from __future__ import annotations

from sqlalchemy import select, update

from pms_registry import schema as t
from pms_registry.core import RegistryCore
from pms_registry.errors import RegistryError
from pms_registry.records import Customer

MAX_CUSTOMER_NAME = 200


class Customers(RegistryCore):
    def get_customer(self, customer_id: str) -> Customer | None:
        with self._tx() as conn:
            row = conn.execute(select(t.customers).where(t.customers.c.customer_id == customer_id)).first()
        return None if row is None else Customer(customer_id=row[0], name=row[1])

    def update_customer(self, customer_id: str, *, name: str) -> bool:
        """Give a customer a new name (its ID, which plants and users refer to, never changes);
        False for no such customer."""
        name = name.strip()
        if not name or len(name) > MAX_CUSTOMER_NAME:
            raise RegistryError(f"a customer's name is 1-{MAX_CUSTOMER_NAME} characters")
        with self._tx() as conn:
            result = conn.execute(update(t.customers).where(t.customers.c.customer_id == customer_id)
                                  .values(name=name))
        return bool(result.rowcount)
