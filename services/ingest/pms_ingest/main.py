"""`pms ingest`: store every gateway's readings, ack them, dead-letter what is invalid."""

from __future__ import annotations

import asyncio

from pms_common.health import Health
from pms_common.service import run_service
from pms_ingest.service import Ingest
from pms_ingest.settings import IngestSettings
from pms_store import open_store


def main(settings: IngestSettings | None = None) -> int:
    settings = settings or IngestSettings()
    health = Health()

    async def serve(stop: asyncio.Event) -> None:
        store = open_store(settings.tsdb_url)
        try:
            if settings.ingest_source == "jetstream":
                from pms_ingest.jetstream import JetStreamIngest  # nats-py only where it is used

                await JetStreamIngest(settings, store, health).run(stop)
            else:
                await Ingest(settings, store, health).run(stop)
        finally:
            store.close()

    return run_service("ingest", settings, health, serve)
