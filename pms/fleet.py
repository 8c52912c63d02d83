"""`pms sim`: a fleet of simulated gateways (collector + simulated meter) for demos and tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from echonet.meter_sim import MeterProfile
from pms.demo import gateway_id
from pms_collector.agent import Collector
from pms_collector.meter import SimulatedMeterLink
from pms_collector.settings import CollectorSettings
from pms_common.health import Health


def build_fleet(base: CollectorSettings, count: int, outbox_dir: Path, health: Health,
                first: int = 1) -> list[Collector]:
    collectors = []
    for index in range(first, first + count):
        gw = gateway_id(index)
        settings = base.model_copy(update={
            "gateway_id": gw,
            "outbox_path": outbox_dir / f"outbox-{gw}.db",
            "mqtt_client_id": None,
        })
        link = SimulatedMeterLink(MeterProfile(seed=index, pv_capacity_kw=4.0 + index % 5))
        collectors.append(Collector(settings, link, health))
    return collectors


async def run_fleet(collectors: list[Collector], stop: asyncio.Event) -> None:
    async with asyncio.TaskGroup() as group:
        for collector in collectors:
            group.create_task(collector.run(stop))
