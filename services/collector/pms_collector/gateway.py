"""One gateway's collector, put together: the link, the read loop filling the outbox, the uplink
emptying it, and remote control between the uplink and the meter.

Each part is handed only what it uses; this is the one place that knows them all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from echonet.io.events import first_set
from pms_collector.backfill import CONTIGUOUS, HISTORY_FLOOR, HISTORY_TARGET, LATEST, SlotBook
from pms_collector.link import MeterLinkDriver, gateway_clock
from pms_collector.live_config import LiveConfig
from pms_collector.meter import MeterReader
from pms_collector.meter_clock import MeterClock, SkewWatch
from pms_collector.outbox import Outbox
from pms_collector.read_loop import ReadLoop
from pms_collector.remote_control import RemoteControl
from pms_collector.settings import CollectorSettings
from pms_collector.update_agent import HealthFacts, Slots, UpdateAgent
from pms_collector.update_slots import VenvSlots
from pms_collector.uplink import Uplink
from pms_common import firmware, timeutil
from pms_common.health import Health
from pms_common.messages import BackfillStatus, Heartbeat
from pms_common.mqtt import BrokerAddress


@dataclass(frozen=True)
class GatewayHeartbeat:
    """The heartbeat as of now, from the parts that know each figure."""

    gateway_id: str
    firmware: str
    link: MeterLinkDriver
    read_loop: ReadLoop
    outbox: Outbox
    slots: SlotBook
    config: LiveConfig
    started: float  # time.monotonic() when the gateway was put together
    monotonic: Callable[[], float] = time.monotonic

    def __call__(self) -> Heartbeat:
        return Heartbeat(
            gateway_id=self.gateway_id,
            at=timeutil.now_jst(),
            uptime_s=round(self.monotonic() - self.started, 1),
            firmware=self.firmware,
            module_family=self.link.module_family,  # type: ignore[arg-type]
            rssi_dbm=self.link.signal_dbm,
            lqi=self.link.lqi,
            read_errors_total=self.read_loop.read_errors,
            outbox_depth=self.outbox.depth(),
            last_slot_end=self.slots.latest,
            power_interval_s=self.config.power_interval_s,
            heartbeat_interval_s=self.config.heartbeat_interval_s,
            meter_address=self.link.meter_address,
            meter_clock_skew_s=self.read_loop.skew.skew_s,
            meter_clock_skewed_since=self.read_loop.skew.since,
            meter_scale_problem=self.read_loop.reader.scale_problem,
            backfill=self._backfill(),
        )

    def _backfill(self) -> BackfillStatus:
        retry = self.read_loop.backfill_retry
        next_attempt = None
        if retry.retry_at is not None and self.slots.pending:
            next_attempt = timeutil.now_jst() + timedelta(seconds=max(0.0, retry.retry_at - self.monotonic()))
        return BackfillStatus(pending_days=self.slots.pending_days(), last_failure=retry.last_failure,
                              last_failure_at=retry.last_failure_at, next_attempt_at=next_attempt,
                              failures_total=retry.failures_total, conflicts_total=retry.conflicts_total,
                              last_conflict=retry.last_conflict)


@dataclass(frozen=True)
class Gateway:
    link: MeterLinkDriver
    outbox: Outbox
    slots: SlotBook
    config: LiveConfig
    read_loop: ReadLoop
    control: RemoteControl
    uplink: Uplink
    updates: UpdateAgent

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop`, or until the update agent asks for a restart (into a new slot, or back)."""
        ending = asyncio.Event()

        async def relay() -> None:
            await first_set(stop, self.updates.restart_requested, timeout_s=None)
            ending.set()

        relaying = asyncio.create_task(relay())
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.link.run(ending))
                group.create_task(self.read_loop.run(ending))
                group.create_task(self.uplink.run(ending))
                group.create_task(self.updates.run(ending))
        finally:
            relaying.cancel()
            self.outbox.close()


def build_gateway(settings: CollectorSettings, link: MeterLinkDriver, health: Health, *,
                  monotonic: Callable[[], float] = time.monotonic,
                  on_login_refused: Callable[[], None] | None = None, slots: Slots | None = None,
                  health_filter: Callable[[HealthFacts], HealthFacts] | None = None) -> Gateway:
    """Open the outbox (sqlite3.Error or OSError when it cannot be) and wire the parts to the link."""
    gateway_id = settings.gateway_id
    started = monotonic()
    broker = BrokerAddress.parse(settings.mqtt_url)  # a bad URL fails before anything is opened
    outbox = Outbox(settings.resolved_outbox_path(), max_batches=settings.outbox_max_batches,
                    sync=settings.outbox_sync)
    slot_book = SlotBook.load(outbox.meta(LATEST), outbox.meta(CONTIGUOUS), ledger=outbox,
                          history_days=settings.backfill_days, history_floor=outbox.meta(HISTORY_FLOOR),
                          history_target=outbox.meta(HISTORY_TARGET))
    config = LiveConfig(outbox, power_interval_s=settings.power_interval_s,
                        heartbeat_interval_s=settings.heartbeat_interval_s,
                        energy_interval_s=settings.energy_interval_s, log_level=settings.log_level)
    reader = MeterReader(link, timeout_s=settings.read_timeout_s)
    meter_clock = MeterClock(monotonic)
    meter_clock.rate = link.clock_rate
    batch_stored = asyncio.Event()
    heartbeat_due = asyncio.Event()
    read_loop = ReadLoop(link, reader, meter_clock=meter_clock, slots=slot_book, outbox=outbox, config=config,
                         health=health, gateway_id=gateway_id,
                         slot_fallback_s=settings.slot_fallback_s, on_stored=batch_stored.set, monotonic=monotonic,
                         wall=gateway_clock(link, settings), meter_check_s=settings.meter_check_interval_s,
                         skew=SkewWatch(settings.meter_clock_skew_threshold_s),
                         backfill_retry_s=settings.backfill_retry_s, on_meter_news=heartbeat_due.set)
    link.on_notification = read_loop.on_push
    control = RemoteControl(link, reader, slot_book, config, meter_clock, wake_reader=read_loop.wake_up,
                            gateway_id=gateway_id)
    heartbeat = GatewayHeartbeat(gateway_id=gateway_id, firmware=settings.firmware, link=link, read_loop=read_loop,
                                 outbox=outbox, slots=slot_book, config=config, started=started,
                                 monotonic=monotonic)
    uplink_ref: list[Uplink] = []  # the agent's health check reads the uplink built below

    def health_facts() -> HealthFacts:
        acked = bool(uplink_ref) and uplink_ref[0].batches_acked > 0
        facts = HealthFacts(broker_connected=health.snapshot().get(f"mqtt:{gateway_id}", False),
                            meter_joined=link.joins > 0, batch_acked=acked)
        # A simulated gateway may be told to fail its health check (update_sim.SimulatedSlots.health).
        return health_filter(facts) if health_filter is not None else facts

    if slots is None and settings.update_root is not None:
        slots = VenvSlots(settings.update_root)
    login = (broker.username, broker.password or "") if broker.username else None
    updates = UpdateAgent(slots, gateway_id=gateway_id, trusted_keys=firmware.trusted_keys(settings.firmware_keys),
                          health=health_facts, login=login, progress_interval_s=settings.update_progress_interval_s,
                          running_version=firmware.version_of_firmware(settings.firmware))
    uplink = Uplink(outbox, heartbeat=heartbeat, commands=control.execute, config=control, batch_stored=batch_stored,
                    health=health, gateway_id=gateway_id, broker=broker,
                    client_id=settings.mqtt_client_id or f"pms-gw-{gateway_id}", max_in_flight=settings.max_in_flight,
                    resend_timeout_s=settings.resend_timeout_s, heartbeat_due=heartbeat_due,
                    on_login_refused=on_login_refused, updates=updates)
    uplink_ref.append(uplink)
    return Gateway(link=link, outbox=outbox, slots=slot_book, config=config, read_loop=read_loop, control=control,
                   uplink=uplink, updates=updates)
