"""`pms alerts`: raise and clear events from gateway presence."""

from __future__ import annotations

import asyncio

from pms_alerts.service import Alerts
from pms_alerts.settings import AlertsSettings
from pms_common.health import Health
from pms_common.service import run_service
from pms_registry import Registry
from pms_store import open_store


def main(settings: AlertsSettings | None = None) -> int:
    settings = settings or AlertsSettings()
    health = Health()

    async def serve(stop: asyncio.Event) -> None:
        registry = Registry(settings.registry_url)
        registry.prepare(migrate=settings.registry_migrate)
        store = open_store(settings.tsdb_url)
        try:
            await Alerts(settings, registry, health, store=store).run(stop)
        finally:
            store.close()
            registry.close()

    return run_service("alerts", settings, health, serve)
