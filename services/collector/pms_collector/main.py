"""`pms collector`: one gateway agent, configured by PMS_* settings or a TOML file."""

from __future__ import annotations

import asyncio

from echonet.meter_sim import MeterProfile
from pms_collector.agent import Collector
from pms_collector.meter import SimulatedMeterLink
from pms_collector.settings import CollectorSettings
from pms_common.health import Health
from pms_common.service import run_service


def build(settings: CollectorSettings, health: Health) -> Collector:
    link = SimulatedMeterLink(MeterProfile(seed=settings.sim_seed, pv_capacity_kw=settings.sim_pv_kw))
    return Collector(settings, link, health)


def main(settings: CollectorSettings | None = None) -> int:
    settings = settings or CollectorSettings()
    health = Health()

    async def serve(stop: asyncio.Event) -> None:
        await build(settings, health).run(stop)

    return run_service("collector", settings, health, serve)
