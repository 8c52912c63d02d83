"""`pms device-manager`: track gateway status and heartbeats in the registry; with PMS_BROKER_ADMIN_URL,
answer gateways' claims and carry out revocations (docs/provisioning.md)."""

from __future__ import annotations

import asyncio

from pms_common.broker_admin import BrokerAdmin
from pms_common.dynsec import DynsecBrokerAdmin
from pms_common.health import Health
from pms_common.mqtt import BrokerAddress
from pms_common.service import run_service
from pms_device_manager.service import DeviceManager
from pms_device_manager.settings import DeviceManagerSettings
from pms_registry import Registry


def broker_admin(settings: DeviceManagerSettings) -> BrokerAdmin | None:
    """Mosquitto's dynamic-security admin when PMS_BROKER_ADMIN_URL names one; None: no provisioning."""
    if settings.broker_admin_url is None:
        return None
    return DynsecBrokerAdmin(BrokerAddress.parse(settings.broker_admin_url))


def main(settings: DeviceManagerSettings | None = None) -> int:
    settings = settings or DeviceManagerSettings()
    health = Health()
    admin = broker_admin(settings)  # a bad URL fails before the service starts

    async def serve(stop: asyncio.Event) -> None:
        registry = Registry(settings.registry_url)
        registry.prepare(migrate=settings.registry_migrate)
        try:
            await DeviceManager(settings, registry, health, admin).run(stop)
        finally:
            registry.close()

    return run_service("device-manager", settings, health, serve)
