"""`pms device-manager`: track gateway status and heartbeats in the registry."""

from __future__ import annotations

import asyncio

from pms_common.health import Health
from pms_common.service import run_service
from pms_device_manager.service import DeviceManager
from pms_device_manager.settings import DeviceManagerSettings
from pms_registry import Registry


def main(settings: DeviceManagerSettings | None = None) -> int:
    settings = settings or DeviceManagerSettings()
    health = Health()

    async def serve(stop: asyncio.Event) -> None:
        registry = Registry(settings.registry_url)
        registry.migrate()
        try:
            await DeviceManager(settings, registry, health).run(stop)
        finally:
            registry.close()

    return run_service("device-manager", settings, health, serve)
