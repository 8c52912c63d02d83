"""The rollout engine's I/O: every `poll_s` it plans each rollout with work (rollout_plan.plan) and
carries the decisions out — jobs published retained on update/job, withdrawn with an empty retained
message, members and rollouts moved in the registry — and it records every gateway's report from
update/state.

Everything it knows is in the registry and at the broker (jobs and reports are retained), so a
restarted device-manager resumes every rollout where it was: it reads the rollouts from the
registry and gets each gateway's last report again on subscribing.

A job is published before its member is marked sent: a crash in between publishes it again (the
same job id, which a gateway takes once). A member is marked expired or cancelled before its job
is withdrawn, and only if it was still in the state the plan saw: a gateway that reported
`restarting` meanwhile keeps its job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as Tally
from datetime import datetime, timedelta

import aiomqtt
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from pms_common import timeutil, topics
from pms_common.messages import UpdateJob, UpdateReport
from pms_common.mqtt import Backoff, BrokerAddress, run_connected, serve_until_stopped
from pms_device_manager.gateway_control import READER
from pms_device_manager.rollout_plan import (
    CancelMember,
    CompleteRollout,
    Decision,
    ExpireMember,
    SendJob,
    StartGroup,
    StopRollout,
    WaitForWindow,
    plan,
)
from pms_pv.sun import TOKYO, NightWindow, night_window
from pms_registry import Registry, RegistryError
from pms_registry.rollouts import RolloutRecord, RolloutStateError, job_id_for

log = logging.getLogger(__name__)
ROLLOUT_GATEWAYS = Gauge("pms_device_manager_rollout_gateways",
                         "Members of the rollouts under way, by state", ["state"])
ROLLOUT_REPORTS = Counter("pms_device_manager_rollout_reports_total",
                          "Update reports read, by what came of them (recorded, unchanged, unknown, closed)",
                          ["outcome"])
ROLLOUT_BAD_REPORTS = Counter("pms_device_manager_rollout_bad_reports_total",
                              "Update reports ignored as broken, by reason", ["reason"])
ROLLOUT_JOBS = Counter("pms_device_manager_rollout_jobs_total", "Update jobs published and withdrawn", ["action"])
ROLLOUTS_STOPPED = Counter("pms_device_manager_rollouts_stopped_total",
                           "Rollouts paused or aborted by their error or success threshold", ["state"])
ACTOR = "device-manager"
# Publishes awaited together: the broker acks them in one round, without piling up paho's queue.
_PUBLISH_BATCH = 50


def image_url(api_public_url: str, sha256: str) -> str:
    return f"{api_public_url.rstrip('/')}/api/v1/firmware/{sha256}/image"


class RolloutEngine:
    def __init__(self, broker: BrokerAddress, client_id: str, registry: Registry, *, api_public_url: str,
                 poll_s: float = 1.0) -> None:
        self.broker = broker
        self.client_id = client_id
        self.registry = registry
        self.api_public_url = api_public_url
        self.poll_s = poll_s
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._nights: dict[tuple[float, float], NightWindow] = {}

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff()

        async def session() -> None:
            async with self.broker.client(identifier=self.client_id, clean_session=False) as client:
                backoff.reset()
                await client.subscribe(topics.ALL_UPDATE_STATES, qos=1)
                self._client = client
                self.connected.set()
                try:
                    await serve_until_stopped(stop, self._consume(client), self._drive(stop))
                finally:
                    self.connected.clear()
                    self._client = None

        connected = asyncio.create_task(run_connected("device-manager rollouts", session, backoff=backoff))
        try:
            await stop.wait()
            await asyncio.wait({connected}, timeout=5)
        finally:
            connected.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connected

    # ---- reports ---------------------------------------------------------------------------------
    async def _consume(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            parts = topics.split_gateway_topic(str(message.topic))
            if parts is None or parts[1] != "update/state" or not isinstance(message.payload, bytes) \
                    or not message.payload:
                continue
            try:
                report = READER.parse(UpdateReport, message.payload)
            except ValidationError as exc:
                ROLLOUT_BAD_REPORTS.labels("contract").inc()
                log.warning("bad update report from %s: %s", parts[0], exc.errors()[0]["msg"])
                continue
            await self.on_report(parts[0], report)

    async def on_report(self, topic_gateway_id: str, report: UpdateReport) -> str:
        if report.gateway_id != topic_gateway_id:
            ROLLOUT_BAD_REPORTS.labels("gateway_mismatch").inc()
            log.warning("update report on %s's topic names gateway %s: ignored", topic_gateway_id, report.gateway_id)
            return "bad"
        outcome = await asyncio.to_thread(
            self.registry.record_update_report, gateway_id=report.gateway_id, job_id=report.job_id,
            state=report.state, version=report.version, reason=report.reason, at=timeutil.now_jst())
        ROLLOUT_REPORTS.labels(outcome).inc()
        if outcome == "unknown":
            log.info("update report from %s for job %s, which no rollout knows: ignored", report.gateway_id,
                     report.job_id)
        return outcome

    # ---- the plan, carried out -------------------------------------------------------------------
    async def _drive(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.drive_once(timeutil.now_jst())
            except (RegistryError, aiomqtt.MqttError) as exc:
                log.warning("device-manager rollouts: %s", exc)
                if isinstance(exc, aiomqtt.MqttError):
                    raise  # the session reconnects
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_s)

    async def drive_once(self, now: datetime) -> None:
        by_state: Tally[str] = Tally()
        for rollout in await asyncio.to_thread(self.registry.rollouts_to_drive):
            members = await asyncio.to_thread(self.registry.rollout_gateways, rollout.rollout_id)
            by_state.update(m.state for m in members)
            windows = await self._windows(rollout, now) if rollout.window == "after_sunset" else None
            decisions = plan(rollout, members, now, windows)
            if any(isinstance(d, SendJob | StartGroup) for d in decisions):
                # The operator may have paused or cancelled it since it was read: then nothing new goes out.
                current = await asyncio.to_thread(self.registry.rollout, rollout.rollout_id)
                if current is None or current.state != "running":
                    continue
            await self._carry_out(rollout, decisions, now)
        for state in ("pending", "waiting_window", "queued", "downloading", "verifying", "installing", "restarting",
                      "checking_health", "committed", "rolled_back", "failed", "expired", "cancelled"):
            ROLLOUT_GATEWAYS.labels(state).set(by_state.get(state, 0))

    async def _windows(self, rollout: RolloutRecord, now: datetime) -> dict[str, NightWindow]:
        locations = await asyncio.to_thread(self.registry.rollout_gateway_locations, rollout.rollout_id)
        windows = {}
        for gateway_id, place in locations.items():
            key = place or TOKYO  # a plant without a position: Tokyo (docs/software-update.md)
            night = self._nights.get(key)
            if night is None or now >= night.sunrise:
                night = await asyncio.to_thread(night_window, key[0], key[1], now)
                self._nights[key] = night
            windows[gateway_id] = night
        return windows

    async def _carry_out(self, rollout: RolloutRecord, decisions: list[Decision], now: datetime) -> None:
        rid = rollout.rollout_id
        manifest: dict[str, object] | None = None
        for decision in decisions:
            if isinstance(decision, SendJob):
                if manifest is None:
                    image = await asyncio.to_thread(self.registry.firmware_image, rollout.image_sha256)
                    if image is None:
                        await self._stop(rollout, StopRollout("paused", f"image {rollout.image_sha256} is gone"), now)
                        return
                    manifest = dict(image.manifest)
                deadline = now + timedelta(seconds=rollout.deadline_s)
                job = UpdateJob(job_id=job_id_for(rid, decision.gateway_id), rollout_id=rid, version=rollout.version,
                                image_url=image_url(self.api_public_url, rollout.image_sha256), manifest=manifest,
                                not_after=deadline, health_timeout_s=rollout.health_timeout_s, issued_at=now)
                await self._publish(topics.update_job(decision.gateway_id), job.to_json())
                sent = await asyncio.to_thread(self.registry.mark_rollout_job_sent, rid, decision.gateway_id, now,
                                               deadline)
                if sent:
                    ROLLOUT_JOBS.labels("sent").inc()
            elif isinstance(decision, WaitForWindow):
                await asyncio.to_thread(self.registry.set_rollout_gateway_state, rid, decision.gateway_id,
                                        "waiting_window", reason="waiting for the plant's sunset", at=now,
                                        from_states=("pending",))
            elif isinstance(decision, ExpireMember | CancelMember):
                state = "expired" if isinstance(decision, ExpireMember) else "cancelled"
                reason = decision.reason if isinstance(decision, ExpireMember) else (rollout.state_reason
                                                                                      or f"rollout {rollout.state}")
                moved = await asyncio.to_thread(self.registry.set_rollout_gateway_state, rid, decision.gateway_id,
                                                state, reason=reason, at=now, from_states=(decision.from_state,))
                if moved and decision.withdraw:
                    await self._publish(topics.update_job(decision.gateway_id), b"")
                    ROLLOUT_JOBS.labels("withdrawn").inc()
                if moved and state == "expired":
                    log.info("rollout %s: %s expired (%s)", rid, decision.gateway_id, reason)
            elif isinstance(decision, StartGroup):
                if not await asyncio.to_thread(self.registry.advance_group, rid, decision.group_index, now):
                    return  # paused or cancelled meanwhile: plan again next turn
                log.info("rollout %s: group %d started", rid, decision.group_index + 1)
            elif isinstance(decision, StopRollout):
                await self._stop(rollout, decision, now)
                return
            elif isinstance(decision, CompleteRollout):
                await self._complete(rollout, now)

    async def _complete(self, rollout: RolloutRecord, now: datetime) -> None:
        """Clear the rollout's jobs at the broker, then mark it completed (a crash in between clears them
        again next turn). Every member finished; a job left retained would meet a gateway whose state
        was wiped (a replaced SD card) as a new one."""
        members = await asyncio.to_thread(self.registry.rollout_gateways, rollout.rollout_id)
        sent = [m.gateway_id for m in members if m.sent_at is not None]
        for start in range(0, len(sent), _PUBLISH_BATCH):
            await asyncio.gather(*(self._publish(topics.update_job(gateway_id), b"")
                                   for gateway_id in sent[start:start + _PUBLISH_BATCH]))
        try:
            await asyncio.to_thread(self.registry.set_rollout_state, rollout.rollout_id, "completed", None, now)
        except RolloutStateError:
            return
        log.info("rollout %s completed; %d retained jobs cleared", rollout.rollout_id, len(sent))

    async def _stop(self, rollout: RolloutRecord, stop: StopRollout, now: datetime) -> None:
        """Pause or abort; an event on the console and an audit line say why."""
        try:
            await asyncio.to_thread(self.registry.set_rollout_state, rollout.rollout_id, stop.state, stop.reason, now)
        except RolloutStateError:
            return  # the operator moved it first
        ROLLOUTS_STOPPED.labels(stop.state).inc()
        message = f"rollout {rollout.rollout_id} ({rollout.version}) {stop.state}: {stop.reason}"
        log.warning(message)
        await asyncio.to_thread(self.registry.record_info_event, kind=f"rollout_{stop.state}", at=now, message=message,
                                params={"rollout_id": rollout.rollout_id, "version": rollout.version,
                                        "reason": stop.reason})
        action = "rollout_pause" if stop.state == "paused" else "rollout_abort"
        await asyncio.to_thread(self.registry.record_audit, at=now, actor=ACTOR, action=action,
                                target=rollout.rollout_id, detail={"reason": stop.reason}, outcome=stop.state)

    async def _publish(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("device-manager rollouts is not connected")
        await client.publish(topic, payload, qos=1, retain=True)
