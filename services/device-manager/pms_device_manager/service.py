"""Records every gateway's presence (its status and the history of its transitions, with the reason)
and latest heartbeat; unknown gateways are registered unbound. A gateway goes offline on its last
will or clean stop at once, and on silence only after `missed_heartbeats` heartbeat intervals
(PMS_MISSED_HEARTBEATS), the rule of pms_common.liveness.

It also holds the gateways' control channel (gateway_control.py): it publishes the desired configurations
and queued commands the API wrote to the registry, and records the gateways' reports and answers there;
the rollouts of update images (rollouts.py, planned by rollout_plan.py); and, given a BrokerAdmin,
zero-config provisioning (claims.py): claims answered, logins made and revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt
from prometheus_client import Counter, Gauge

from pms_common import timeutil
from pms_common.broker_admin import BrokerAdmin, BrokerLogin
from pms_common.health import Health
from pms_common.liveness import Transition
from pms_common.messages import GatewayStatus, Heartbeat
from pms_common.mqtt import BrokerAddress
from pms_common.presence import follow_presence
from pms_device_manager.claims import ClaimHandler, ClaimLimits, ClaimService, RevocationExecutor
from pms_device_manager.gateway_control import READER, GatewayControl
from pms_device_manager.rollouts import RolloutEngine
from pms_device_manager.settings import DeviceManagerSettings
from pms_registry import Registry, RegistryError

log = logging.getLogger(__name__)

HEARTBEATS = Counter("pms_device_manager_heartbeats_total", "Heartbeats recorded")
TRANSITIONS = Counter("pms_device_manager_transitions_total", "Gateway state changes", ["state"])
BAD_PAYLOADS = Counter("pms_device_manager_bad_payloads_total", "Presence payloads that broke the contract")
ONLINE = Gauge("pms_device_manager_gateways_online", "Gateways currently online")
# The registry's gateways by condition (online, offline, never_seen, unbound: Gateway.condition), for the
# share of installed gateways offline (PMSGatewaysOnlineFalling). Counted from the registry rather than
# compared with a peak of this process's own gauge: a peak over a window becomes the new normal while
# an outage lasts (the alert resolved after an hour), and a restart of device-manager forgets it.
FLEET = Gauge("pms_device_manager_gateways", "Gateways by condition, as the registry has them", ["condition"])
# Gateways sit behind NAT and are not scraped: their outbox depth reaches Prometheus from their
# heartbeats, here, for the outbox alerts (deploy/prometheus/alerts.yml). One series per online
# gateway; an offline gateway's is removed (its depth is unknown, and being offline is its own alert).
OUTBOX_DEPTH = Gauge("pms_device_manager_gateway_outbox_depth",
                     "Batches not yet acked in a gateway's outbox, from its latest heartbeat", ["gateway_id"])


class DeviceManager:
    def __init__(self, settings: DeviceManagerSettings, registry: Registry, health: Health,
                 broker_admin: BrokerAdmin | None = None) -> None:
        """`broker_admin` None: no provisioning (claims go unanswered, gateways come with logins made by hand)."""
        self.settings = settings
        self.registry = registry
        self.health = health
        self.online: set[str] = set()
        client_id = settings.mqtt_client_id or "pms-device-manager"
        # A fixed client id: the broker keeps this persistent session's queue across restarts.
        broker = BrokerAddress.parse(settings.mqtt_url)
        self.control = GatewayControl(broker, f"{client_id}-control", registry,
                                      poll_s=settings.control_poll_s, answer_grace_s=settings.command_answer_grace_s)
        self.rollouts = RolloutEngine(broker, f"{client_id}-rollouts", registry,
                                      api_public_url=settings.api_public_url, poll_s=settings.rollout_poll_s)
        self.broker_admin = broker_admin
        self.claims: ClaimService | None = None
        self.revocations: RevocationExecutor | None = None
        if broker_admin is not None:
            limits = ClaimLimits(per_serial_rate_s=settings.claim_rate_per_serial_s,
                                 per_serial_burst=settings.claim_burst_per_serial,
                                 total_rate_s=settings.claim_rate_total_s, total_burst=settings.claim_burst_total)
            handler = ClaimHandler(registry, broker_admin, limits, gateway_mqtt_url=settings.gateway_mqtt_url)
            self.claims = ClaimService(handler, broker, f"{client_id}-claims")
            self.revocations = RevocationExecutor(registry, broker_admin, poll_s=settings.revocation_poll_s,
                                                  announce_offline=self.control.announce_offline)

    async def on_message(self, _client: aiomqtt.Client, message: GatewayStatus | Heartbeat) -> None:
        if isinstance(message, Heartbeat):
            HEARTBEATS.inc()
            OUTBOX_DEPTH.labels(message.gateway_id).set(message.outbox_depth)
            await asyncio.to_thread(
                self.registry.record_heartbeat, message.gateway_id, message.model_dump(mode="json"),
                timeutil.now_jst(), message.power_interval_s,
            )

    async def on_transition(self, _client: aiomqtt.Client, transition: Transition) -> None:
        TRANSITIONS.labels(transition.state).inc()
        if transition.state == "online":
            self.online.add(transition.gateway_id)
        else:
            self.online.discard(transition.gateway_id)
            with contextlib.suppress(KeyError):  # no heartbeat came from it since the start
                OUTBOX_DEPTH.remove(transition.gateway_id)
        ONLINE.set(len(self.online))
        await asyncio.to_thread(self.registry.record_presence, transition.gateway_id, transition.state,
                                transition.at, transition.reason)

    async def run(self, stop: asyncio.Event) -> None:
        if self.broker_admin is not None and self.settings.provisioning_password is not None:
            await self.broker_admin.ensure_provisioning_login(BrokerLogin(
                username=self.settings.provisioning_username,
                password=self.settings.provisioning_password.get_secret_value()))
        async with asyncio.TaskGroup() as group:
            group.create_task(self.control.run(stop))
            group.create_task(self.rollouts.run(stop))
            group.create_task(self._follow_presence(stop))
            group.create_task(self._count_fleet(stop))
            if self.claims is not None:
                group.create_task(self.claims.run(stop))
            if self.revocations is not None:
                group.create_task(self.revocations.run(stop))

    async def _count_fleet(self, stop: asyncio.Event) -> None:
        """Set the gauge of gateways by condition from the registry, every fleet_count_s."""
        while not stop.is_set():
            try:
                counts = await asyncio.to_thread(self.registry.gateway_status_counts)
                for condition, count in counts.items():
                    FLEET.labels(condition).set(count)
            except RegistryError as exc:  # the registry is down for a moment: the gauge keeps its last counts
                log.warning("device-manager: cannot count the gateways: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.fleet_count_s)

    async def _follow_presence(self, stop: asyncio.Event) -> None:
        await follow_presence(
            name="device-manager",
            broker=BrokerAddress.parse(self.settings.mqtt_url),
            client_id=self.settings.mqtt_client_id or "pms-device-manager",
            health=self.health,
            stop=stop,
            on_transition=self.on_transition,
            on_message=self.on_message,
            tick_s=self.settings.tick_s,
            missed_heartbeats=self.settings.missed_heartbeats,
            bad_payload=lambda _topic, _reason: BAD_PAYLOADS.inc(),
            reader=READER,
        )
