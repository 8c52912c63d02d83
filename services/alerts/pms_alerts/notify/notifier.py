"""The one entry point the alerts service runs: the notifier's dispatcher and the MQTT publisher.

    notifier = Notifier(settings, registry, clock)
    await notifier.run(stop)        # until `stop` is set

`settings` is the alerts service's settings (they inherit NotifySettings), `clock` the service's
clock (a callable returning an aware datetime). The MQTT publisher keeps its own connection to
`settings.mqtt_url` (client id `<mqtt_client_id or pms-alerts>-events`), reconnecting after broker
failures, so it neither waits for nor disturbs the presence session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from pms_alerts.notify.dispatcher import Clock, Dispatcher
from pms_alerts.notify.mqtt_publisher import Publish, publish_pending
from pms_alerts.notify.settings import NotifySettings
from pms_common.errors import PmsError
from pms_common.mqtt import Backoff, BrokerAddress, is_broker_failure, run_connected
from pms_registry import Registry, RegistryError

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, settings: NotifySettings, registry: Registry, clock: Clock,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.dispatcher = Dispatcher(settings, registry, clock, rng)

    async def run(self, stop: asyncio.Event, *, mqtt: bool = True) -> None:
        """Deliver to webhooks and e-mail, and (`mqtt`) publish on pms/v1/events, until `stop`."""
        tasks = [asyncio.create_task(self.dispatcher.run(stop))]
        if mqtt:
            tasks.append(asyncio.create_task(self._mqtt(stop)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def publish_events(self, publish: Publish, stop: asyncio.Event | None = None) -> int:
        """Publish what the journal holds after the cursor "mqtt" (for a caller with its own client),
        until `stop` is set."""
        return await publish_pending(self.registry, publish, stop=stop)

    async def _mqtt(self, stop: asyncio.Event) -> None:
        broker = BrokerAddress.parse(self.settings.mqtt_url)
        backoff = Backoff()
        identifier = f"{self.settings.mqtt_client_id or 'pms-alerts'}-events"

        async def session() -> None:
            async with broker.client(identifier=identifier) as client:
                backoff.reset()

                async def publish(topic: str, payload: bytes) -> None:
                    await client.publish(topic, payload, qos=1)

                while not stop.is_set():
                    try:
                        await publish_pending(self.registry, publish, stop=stop)
                    except (RegistryError, PmsError) as exc:
                        log.error("alerts: publishing events failed, trying again: %s", exc)
                    except Exception as exc:
                        if is_broker_failure(exc):
                            raise  # run_connected reconnects
                        log.exception("alerts: publishing events failed unexpectedly, trying again")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self.settings.notify_poll_s)

        await run_connected("alerts-events", session, backoff=backoff)
