"""Gateway-offline rule: an open event while a gateway is offline, recovered with a time when it is back.

Periodic rules that read the time-series store run on the ticks: billing start (`billing`) and
register anomalies (`anomalies`). What heartbeats say about each meter (its clock, its scale) is
followed by `meter_faults`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

import aiomqtt
from prometheus_client import Counter

from pms_alerts.anomalies import RegisterAnomalyRule
from pms_alerts.billing import BillingStartRule
from pms_alerts.meter_faults import MeterFaultRule
from pms_alerts.settings import AlertsSettings
from pms_common import timeutil, topics
from pms_common.contract_reader import ContractReader
from pms_common.health import Health
from pms_common.liveness import Transition
from pms_common.messages import Event, GatewayStatus, Heartbeat
from pms_common.mqtt import BrokerAddress
from pms_common.presence import follow_presence
from pms_registry import Registry, RegistryError
from pms_registry.registry import EventRecord
from pms_store import StoreError, TimeSeriesStore

log = logging.getLogger(__name__)

EVENTS = Counter("pms_alerts_events_total", "Events raised or recovered", ["kind"])
BAD_PAYLOADS = Counter("pms_alerts_bad_payloads_total", "Presence payloads that broke the contract")
UNKNOWN_FIELDS = Counter("pms_alerts_unknown_fields_total",
                         "Messages read with fields this version does not know (ignored)", ["message"])


def event_message(record: EventRecord, kind: str | None = None) -> Event:
    return Event(
        event_id=record.event_id, kind=kind or record.kind,  # type: ignore[arg-type]
        state=record.state,  # type: ignore[arg-type]
        gateway_id=record.gateway_id, service_code=record.service_code, opened_at=record.opened_at,
        recovered_at=record.recovered_at, message=record.message,
    )


class Alerts:
    def __init__(self, settings: AlertsSettings, registry: Registry, health: Health,
                 store: TimeSeriesStore | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.health = health
        self.billing = BillingStartRule(registry, store) if store is not None else None
        self.anomalies = RegisterAnomalyRule(registry, store) if store is not None else None
        self.meter_faults = MeterFaultRule(registry)
        self._next_billing_check = 0.0
        self._next_anomaly_check = 0.0

    async def on_tick(self, client: aiomqtt.Client) -> None:
        """Periodic rules: decide billing start dates of plants that have begun to sell, and log
        the register anomalies the store found."""
        now = time.monotonic()
        if self.billing is not None and now >= self._next_billing_check:
            self._next_billing_check = now + self.settings.billing_check_s
            await self._run_rule(client, "billing-start", self.billing.check, "billing_start_decided")
        if self.anomalies is not None and now >= self._next_anomaly_check:
            self._next_anomaly_check = now + self.settings.anomaly_check_s
            await self._run_rule(client, "register-anomaly", self.anomalies.check, "register_anomaly")

    async def _run_rule(
        self, client: aiomqtt.Client, name: str, check: Callable[[datetime], list[EventRecord]], kind: str
    ) -> None:
        try:
            records = await asyncio.to_thread(check, timeutil.now_jst())
        except (StoreError, RegistryError) as exc:
            log.error("alerts: %s check failed, retrying later: %s", name, exc)
            return
        for record in records:
            EVENTS.labels(kind).inc()
            # An anomaly needs someone to look at the meter; a billing decision is just news.
            log.log(logging.WARNING if kind == "register_anomaly" else logging.INFO, "alerts: %s", record.message)
            await client.publish(topics.event(kind), event_message(record).to_json(), qos=1)

    async def on_message(self, client: aiomqtt.Client, message: GatewayStatus | Heartbeat) -> None:
        """A heartbeat's verdict on its meter: an event when it goes bad, recovered when it is well again."""
        if not isinstance(message, Heartbeat):
            return
        try:
            records = await asyncio.to_thread(self.meter_faults.on_heartbeat, message)
        except RegistryError as exc:
            log.error("alerts: meter-fault check of %s failed: %s", message.gateway_id, exc)
            return
        for record in records:
            EVENTS.labels(record.kind).inc()
            log.warning("alerts: %s%s", record.message, " (recovered)" if record.state == "recovered" else "")
            await client.publish(topics.event(record.kind), event_message(record).to_json(), qos=1)

    async def on_transition(self, client: aiomqtt.Client, transition: Transition) -> None:
        gateway_id = transition.gateway_id
        if transition.state == "offline":
            service_code = await asyncio.to_thread(self.registry.plant_of_gateway, gateway_id)
            record, opened = await asyncio.to_thread(
                lambda: self.registry.open_event(
                    kind="gateway_offline", at=transition.at, gateway_id=gateway_id, service_code=service_code,
                    message=f"gateway {gateway_id} is offline ({transition.reason})",
                )
            )
            if opened:
                EVENTS.labels("gateway_offline").inc()
                log.warning("alerts: %s", record.message)
                await client.publish(topics.event("gateway_offline"), event_message(record).to_json(), qos=1)
        else:
            recovered = await asyncio.to_thread(
                lambda: self.registry.recover_event(kind="gateway_offline", gateway_id=gateway_id, at=transition.at)
            )
            if recovered is not None:
                EVENTS.labels("gateway_recovered").inc()
                log.info("alerts: gateway %s recovered at %s", gateway_id, transition.at.isoformat())
                message = event_message(recovered, kind="gateway_recovered")
                await client.publish(topics.event("gateway_recovered"), message.to_json(), qos=1)

    async def run(self, stop: asyncio.Event) -> None:
        await follow_presence(
            name="alerts",
            broker=BrokerAddress.parse(self.settings.mqtt_url),
            client_id=self.settings.mqtt_client_id or "pms-alerts",
            health=self.health,
            stop=stop,
            on_transition=self.on_transition,
            on_message=self.on_message,
            tick_s=self.settings.tick_s,
            missed_heartbeats=self.settings.missed_heartbeats,
            bad_payload=lambda _topic, _reason: BAD_PAYLOADS.inc(),
            reader=ContractReader("alerts", UNKNOWN_FIELDS),
            on_tick=self.on_tick,
        )
