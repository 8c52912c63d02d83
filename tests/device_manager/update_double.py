"""A fleet of simulated gateways' update agents that follows contract 1.4 and nothing more: each
gateway takes its retained update/job, reports downloading → verifying → installing → restarting →
checking_health → committed (or rolled_back, back on its old version, when its health check is to
fail), retained on update/state. No image is downloaded or installed: this stands in for the real
update agent (pms_collector) until the rollout tests run it with a simulated installer.

It follows the job semantics every part relies on: a job already taken is not taken again (the same
job id re-published after a device-manager restart), a job past not_after is `failed` ("expired on
the gateway"), a gateway already on the target version commits at once, and a withdrawn job (empty
retained) that has not reached `restarting` is abandoned (`failed`, "withdrawn").
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import aiomqtt

from pms_common import timeutil, topics
from pms_common.messages import UpdateJob, UpdateReport
from pms_common.mqtt import BrokerAddress

PAST_RESTART = ("restarting", "checking_health")


@dataclass
class SimulatedGateway:
    gateway_id: str
    version: str
    fails_health_check: bool = False
    online: bool = True
    jobs_taken: list[str] = field(default_factory=list)
    state: str | None = None
    task: asyncio.Task[None] | None = None


class UpdateAgentFleet:
    def __init__(self, broker_url: str, gateway_ids: list[str], *, version: str, step_s: float = 0.05) -> None:
        self.broker = BrokerAddress.parse(broker_url)
        self.gateways = {gw: SimulatedGateway(gw, version) for gw in gateway_ids}
        self.step_s = step_s
        self.ready = asyncio.Event()
        self._client: aiomqtt.Client | None = None

    async def run(self, stop: asyncio.Event) -> None:
        async with self.broker.client(identifier=f"update-fleet-{id(self)}") as client:
            self._client = client
            await client.subscribe(topics.gateway("+", "update/job"), qos=1)
            self.ready.set()
            reader = asyncio.create_task(self._read(client))
            await stop.wait()
            reader.cancel()
            for gateway in self.gateways.values():
                if gateway.task is not None:
                    gateway.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            parts = topics.split_gateway_topic(str(message.topic))
            gateway = self.gateways.get(parts[0]) if parts is not None else None
            if gateway is None or not gateway.online or not isinstance(message.payload, bytes):
                continue
            if not message.payload:
                self._withdrawn(gateway)
                continue
            job = UpdateJob.model_validate_json(message.payload)
            if job.job_id in gateway.jobs_taken:
                continue
            gateway.jobs_taken.append(job.job_id)
            gateway.task = asyncio.create_task(self._update(gateway, job))

    def _withdrawn(self, gateway: SimulatedGateway) -> None:
        if gateway.task is not None and not gateway.task.done() and gateway.state not in PAST_RESTART:
            gateway.task.cancel()
            job_id = gateway.jobs_taken[-1]
            asyncio.get_running_loop().create_task(self._report(gateway, job_id, "failed", "?", "withdrawn"))

    async def _update(self, gateway: SimulatedGateway, job: UpdateJob) -> None:
        if timeutil.now_jst() > job.not_after:
            await self._report(gateway, job.job_id, "failed", job.version, "expired on the gateway")
            return
        if gateway.version == job.version:
            await self._report(gateway, job.job_id, "committed", job.version)
            return
        for state in ("downloading", "verifying", "installing", "restarting", "checking_health"):
            await self._report(gateway, job.job_id, state, job.version)
            await asyncio.sleep(self.step_s)
        if gateway.fails_health_check:
            await self._report(gateway, job.job_id, "rolled_back", job.version,
                               "health check failed: no readings acked by ingest")
        else:
            gateway.version = job.version
            await self._report(gateway, job.job_id, "committed", job.version)

    async def _report(self, gateway: SimulatedGateway, job_id: str, state: str, target_version: str,
                      reason: str | None = None) -> None:
        gateway.state = state
        report = UpdateReport(gateway_id=gateway.gateway_id, job_id=job_id, state=state,  # type: ignore[arg-type]
                              version=gateway.version, target_version=target_version, reason=reason,
                              at=timeutil.now_jst())
        assert self._client is not None
        await self._client.publish(topics.update_state(gateway.gateway_id), report.to_json(), qos=1, retain=True)
