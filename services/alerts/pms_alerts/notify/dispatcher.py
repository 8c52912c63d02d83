"""The notifier's loop: journal → channel queues → grouped deliveries → webhook / e-mail, durably.

Each pass (1) fans the journal rows after the cursor "notify" out to the channels they concern
(queue rows, unique per channel and happening, in the transaction that moves the cursor: a crash
repeats nothing and loses nothing), (2) turns every channel queue that is due (grouping) into one
delivery whose idempotency key is a hash of the channel and its happenings, and (3) sends the
deliveries that are due, recording success, or the error and the next attempt (backoff), or death
after the maximum age. Time comes from `clock` (the alerts service's clock), never the wall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from prometheus_client import Counter, Gauge, Histogram

from pms_alerts.notify import grouping
from pms_alerts.notify.mail import compose
from pms_alerts.notify.payload import Told, delivery_body, told_of
from pms_alerts.notify.settings import NotifySettings
from pms_alerts.notify.smtp import MailError, SmtpServer, build_message, send_mail_async
from pms_alerts.notify.webhook import post_delivery
from pms_common import event_text
from pms_common.errors import PmsError
from pms_registry import Registry, RegistryError
from pms_registry.deliveries import Delivery
from pms_registry.records import Channel, Happening

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
CURSOR = "notify"
SENT_KINDS = ("webhook", "email")  # the MQTT publisher tells every happening on its own

DELIVERIES = Counter("pms_alerts_deliveries_total", "Delivery attempts by channel kind and outcome",
                     ["channel_kind", "outcome"])  # outcome: delivered, failed (will retry), dead
DEAD_LETTERS = Counter("pms_alerts_dead_letters_total", "Deliveries given up after their maximum age",
                       ["channel_kind"])
BACKLOG = Gauge("pms_alerts_notify_backlog", "Happenings queued for a channel, and deliveries by state",
                ["what"])
LATENCY = Histogram("pms_alerts_delivery_latency_seconds",
                    "From the first happening a delivery carries to its delivery (clock time)", ["channel_kind"],
                    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600))


@dataclass(frozen=True)
class PassReport:
    """What one pass did (for tests and logs)."""

    queued: int
    grouped: int
    delivered: int
    failed: int
    dead: int


class Dispatcher:
    def __init__(self, settings: NotifySettings, registry: Registry, clock: Clock,
                 rng: random.Random | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.rng = rng or random.Random()
        self.policy = settings.retry_policy()

    # ---- one pass ---------------------------------------------------------------------------------
    async def run_once(self) -> PassReport:
        now = self.clock()
        queued = await asyncio.to_thread(self.fan_out, now)
        grouped = await asyncio.to_thread(self.group, now)
        delivered, failed, dead = await self.send_due(now)
        await asyncio.to_thread(self._measure_backlog)
        return PassReport(queued=queued, grouped=grouped, delivered=delivered, failed=failed, dead=dead)

    def fan_out(self, now: datetime) -> int:
        """Queue the journal rows after the cursor for their channels; returns the rows queued."""
        queued = 0
        cursor = self.registry.get_cursor(CURSOR)
        while True:
            happenings = self.registry.happenings_after(cursor, limit=500)
            if not happenings:
                return queued
            # Who hears of a happening depends on its plant's customer and its severity only: ask the
            # registry once per (customer, severity) of the batch, not once per plant of a storm.
            customers = self.registry.plant_customers([h.event.service_code for h in happenings
                                                       if h.event.service_code])
            fan: dict[int, list[int]] = {}
            audiences: dict[tuple[str | None, str | None], list[int]] = {}
            for happening in happenings:
                event = happening.event
                customer = customers.get(event.service_code or "")
                audience = (customer, event.severity)
                if audience not in audiences:
                    plant = event.service_code if customer is not None else None
                    audiences[audience] = [channel.channel_id for channel in
                                           self.registry.channels_for(plant, event.severity)
                                           if channel.kind in SENT_KINDS]
                fan[happening.happening_id] = audiences[audience]
            cursor = happenings[-1].happening_id
            queued += self.registry.enqueue_happenings(fan, cursor=CURSOR, cursor_value=cursor, at=now)

    def group(self, now: datetime) -> int:
        """Make one delivery of each channel queue that is due; returns how many were made."""
        heads = self.registry.queue_heads()
        if not heads:
            return 0
        channels = {channel.channel_id: channel for channel in self.registry.list_channels(include_all=True)}
        gone = [channel_id for channel_id in heads if channel_id not in channels or not channels[channel_id].enabled]
        if gone:
            dropped = self.registry.discard_queued(gone)
            log.info("notify: dropped %d queued happenings of disabled or deleted channels %s", dropped, gone)
        timings = {channel_id: grouping.GroupTiming(channel.group_wait_s, channel.group_interval_s)
                   for channel_id, channel in channels.items() if channel.enabled}
        due = grouping.due_channels(heads, last_flush=self.registry.last_delivery_times(), timings=timings, now=now)
        made = 0
        for channel_id in due:
            entries = self.registry.queued_for(channel_id)
            happenings = self.registry.happenings_by_id([entry.happening_id for entry in entries])
            names = self.registry.plant_names([h.event.service_code for h in happenings if h.event.service_code])
            body = delivery_body(channel_id, [told(happening, names) for happening in happenings])
            delivery = self.registry.create_delivery(
                channel_id=channel_id, queue_ids=[entry.queue_id for entry in entries],
                idempotency_key=str(body["idempotency_key"]), body=body, at=now)
            made += delivery is not None
        return made

    async def send_due(self, now: datetime) -> tuple[int, int, int]:
        due = await asyncio.to_thread(self.registry.due_deliveries, now=now, limit=self.settings.notify_batch)
        if not due:
            return 0, 0, 0
        channels = {channel.channel_id: channel
                    for channel in await asyncio.to_thread(self.registry.list_channels, include_all=True)}
        counts = {"delivered": 0, "failed": 0, "dead": 0}
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_s) as client:
            outcomes = await asyncio.gather(*(self._attempt(client, delivery, channels.get(delivery.channel_id), now)
                                              for delivery in due))
        for outcome in outcomes:
            counts[outcome] += 1
        return counts["delivered"], counts["failed"], counts["dead"]

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery, channel: Channel | None,
                       now: datetime) -> str:
        delivery_id, body, key = delivery.delivery_id, delivery.body, delivery.idempotency_key
        created_at, attempts = delivery.created_at, delivery.attempts
        kind = channel.kind if channel is not None else "deleted"
        note: str | None = None
        try:
            if channel is None or not channel.enabled:
                raise PmsError(f"channel of delivery {delivery_id} is deleted or disabled")
            if channel.kind == "webhook":
                await post_delivery(client, config=channel.config, body=body, idempotency_key=key,
                                    delivery_id=delivery_id, timestamp=int(now.timestamp()))
            elif channel.kind == "email":
                note = await self._mail(channel, body, key)
            else:
                raise PmsError(f"channel {channel.channel_id} is of kind {channel.kind}, which is not sent by mail "
                               "or webhook")
        except Exception as exc:  # a bad channel, or a surprise in a sender, fails this delivery, not the service
            error = str(exc) if isinstance(exc, PmsError | RegistryError) else f"{type(exc).__name__}: {exc}"
            next_at = self.policy.next_attempt(created_at=created_at, failed_at=now,
                                               failed_attempts=attempts + 1, rng=self.rng)
            await asyncio.to_thread(self.registry.record_failed, delivery_id, at=now, error=error,
                                    next_attempt_at=next_at)
            if next_at is None:
                DELIVERIES.labels(kind, "dead").inc()
                DEAD_LETTERS.labels(kind).inc()
                log.error("notify: delivery %d to %s channel is dead after %d attempts: %s", delivery_id, kind,
                          attempts + 1, error)
                return "dead"
            DELIVERIES.labels(kind, "failed").inc()
            log.warning("notify: delivery %d to %s channel failed (attempt %d), again at %s: %s", delivery_id,
                        kind, attempts + 1, next_at.isoformat(), error)
            return "failed"
        await asyncio.to_thread(self.registry.record_delivered, delivery_id, at=now, note=note)
        DELIVERIES.labels(kind, "delivered").inc()
        first = min((item.at for item in told_of(body)), default=now)
        LATENCY.labels(kind).observe(max(0.0, (now - first).total_seconds()))
        return "delivered"

    async def _mail(self, channel: Channel, body: dict[str, Any], key: str) -> str | None:
        if not self.settings.smtp_url:
            raise MailError("no SMTP server is set (PMS_SMTP_URL), so e-mail channels cannot be sent")
        recipients = [str(address) for address in channel.config.get("to") or [] if address]
        if not recipients:
            raise MailError(f"e-mail channel {channel.name!r} has no recipients")
        told = told_of(body)
        content = compose(told, channel.language, self.settings.console_url)
        message = build_message(content, mail_from=self.settings.mail_from, to=recipients, message_id=key,
                                happening_ids=[item.happening_id for item in told])
        return await send_mail_async(SmtpServer.parse(self.settings.smtp_url), message,
                                     timeout_s=self.settings.smtp_timeout_s, ca_file=self.settings.smtp_ca_file)

    def _measure_backlog(self) -> None:
        for what, count in self.registry.notify_backlog().items():
            BACKLOG.labels(what).set(count)

    # ---- the loop ---------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Passes every `notify_poll_s` (wall time: how often to look; what is due is the clock's say)."""
        while not stop.is_set():
            try:
                await self.run_once()
            except (RegistryError, PmsError) as exc:
                log.error("notify: pass failed, trying again: %s", exc)
            except Exception:  # the notifier must outlive a bug in one pass: the alerts service runs on
                log.exception("notify: pass failed unexpectedly, trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.notify_poll_s)


def english_text(happening: Happening, plant_name: str | None = None) -> str:
    """The English sentence of a happening (its phase's, not the raise's text a clear still stores)."""
    event = happening.event
    return event_text.render(event.kind, happening.phase, event_text.event_params(event, plant_name), "en",
                             message=event.message)


def told(happening: Happening, plant_names: dict[str, str]) -> Told:
    event = happening.event
    plant_name = plant_names.get(event.service_code or "")
    return Told(
        happening_id=happening.happening_id, phase=happening.phase, at=happening.at, event_id=event.event_id,
        kind=event.kind, state=event.state, severity=event.severity, service_code=event.service_code,
        plant_name=plant_name, gateway_id=event.gateway_id,
        opened_at=event.opened_at, recovered_at=event.recovered_at, message=english_text(happening, plant_name),
        params=dict(event.params), acknowledged_by=event.acknowledged_by, ack_comment=event.ack_comment,
    )
