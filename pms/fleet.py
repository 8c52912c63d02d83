"""`pms sim` and `pms up`: a fleet of simulated gateways, each a collector and a virtual module.

Every simulated plant runs through the whole gateway stack: the echonet virtual module (SKSTACK
dialogue and a 0x0288 meter) on a pseudo-terminal, opened by the collector as a serial device,
then the B-route session, the ECHONET Lite codec and the durable outbox. Only the radio is simulated.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pms.demo import gateway_id
from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.settings import CollectorSettings
from pms_common.health import Health

# Each simulated meter's history (its registers go back 100 days) is read back this far on a first
# start: a week of real-looking charts at once, at any hour, without every plant of a large fleet
# ingesting three months on start-up.
DEMO_HISTORY_DAYS = 8


def build_fleet(base: CollectorSettings, count: int, outbox_dir: Path, health: Health,
                first: int = 1) -> list[Gateway]:
    gateways = []
    for index in range(first, first + count):
        gw = gateway_id(index)
        settings = base.model_copy(update={
            "gateway_id": gw,
            "link": "sim",
            "outbox_path": outbox_dir / f"outbox-{gw}.db",
            "mqtt_client_id": None,
            "sim_seed": index,
            "sim_pv_kw": 4.0 + index % 5,
            # Both families in a fleet, as in the field.
            "sim_module": "bp35a1" if index % 2 else "bp35c0",
            "backfill_days": min(base.backfill_days, DEMO_HISTORY_DAYS),
        })
        gateways.append(build_gateway(settings, SimulatedModuleLink(settings), health))
    return gateways


async def run_fleet(gateways: list[Gateway], stop: asyncio.Event) -> None:
    async with asyncio.TaskGroup() as group:
        for gateway in gateways:
            group.create_task(gateway.run(stop))
