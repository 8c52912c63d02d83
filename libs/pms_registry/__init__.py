"""The registry: plants, gateways, customers, API keys, events and notices (SQLAlchemy 2 Core)."""

from pms_registry.errors import RegistryError
from pms_registry.registry import Registry

__all__ = ["Registry", "RegistryError"]
