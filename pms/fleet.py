"""`pms sim` and `pms up`: a fleet of simulated gateways, each a collector and a virtual module.

Every simulated plant runs through the whole gateway stack: the echonet virtual module (SKSTACK
dialogue and a 0x0288 meter) on a pseudo-terminal, opened by the collector as a serial device,
then the B-route session, the ECHONET Lite codec and the durable outbox. Only the radio is simulated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pms.demo import DemoFactoryGateway, gateway_id
from pms_collector.gateway import Gateway, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.settings import CollectorSettings
from pms_collector.update_sim import SimulatedSlots, run_provisioned_with_simulated_updates
from pms_common import timeutil
from pms_common.health import Health

# Each simulated meter's history (its registers go back 100 days) is read back this far on a first
# start: a week of real-looking charts at once, at any hour, without every plant of a large fleet
# ingesting three months on start-up.
DEMO_HISTORY_DAYS = 8
# ...but a fleet's first start reads this many plant-days of history in all, at most (300 plants x 8
# days; a bigger fleet reads fewer days, at least one). Ingest stores the history slots ahead of the
# power readings queued behind them: at 1000 plants x 8 days (384 000 slots) the plants stayed "not
# measured" for minutes, and stopped being measured when the queue outgrew three power intervals.
DEMO_HISTORY_PLANT_DAYS = 2400


# How long a claim of a simulated fleet waits for its answer, per gateway of the fleet (`claiming`).
CLAIM_WAIT_S_PER_GATEWAY = 0.5


def demo_history_days(plants: int) -> int:
    """Days of history each of a fleet of `plants` reads back on its first start."""
    return max(1, min(DEMO_HISTORY_DAYS, DEMO_HISTORY_PLANT_DAYS // max(1, plants)))


def demo_meters_installed_at(var_dir: Path, plants: int = 1) -> datetime:
    """When the simulated meters of a fleet of `plants` were installed: two days before the history
    they show (`demo_history_days`), so that the first days of the charts are whole days of a meter
    already running; fixed on the first start (kept in var/) so that their registers continue
    across restarts.

    A simulated meter adds up every half hour since its installation before it first answers
    (`warmed_up`, about 35 ms for ten days): a meter installed months back costs a second of CPU
    per plant, which a fleet of hundreds pays at start-up; a thousand plants show two days, and
    their meters are installed four days back, not ten.
    """
    path = var_dir / "demo-meters-installed-at"
    if path.exists():
        return datetime.fromisoformat(path.read_text().strip())
    installed = timeutil.day_start(timeutil.now_jst().date() - timedelta(days=demo_history_days(plants) + 2))
    path.write_text(installed.isoformat() + "\n")
    return installed


def warmed_up(links: Iterable[SimulatedModuleLink], stopped: Callable[[], bool] = lambda: False) -> int:
    """Add up each simulated meter's registers from its installation to now, before the fleet starts;
    returns how many meters.

    The pty hub would do it between answers, a step at a time; but with a thousand meters still adding
    up while their collectors join and read, the hub's one thread answered late and collectors timed
    out ("no answer to SKSENDTO") and retried, which made start-up slower still. Done first, every
    answer is ready when asked for. Call it off the event loop (asyncio.to_thread): it takes seconds;
    it ends early once `stopped()`.
    """
    count = 0
    for link in links:
        if stopped():
            break
        while link.simulator.warm_up(time.monotonic()):
            pass
        count += 1
    return count


def fleet_settings(base: CollectorSettings, count: int, outbox_dir: Path, first: int = 1, *,
                   installed_at: datetime | None = None) -> list[CollectorSettings]:
    """Each simulated gateway's settings: its id, outbox, simulated meter and module.

    The outboxes sync as PMS_OUTBOX_SYNC says, else `normal`: a gateway in the field has a disk of
    its own, a simulated fleet shares one, and a thousand outboxes syncing it on every write (full)
    kept the disk busy and the fleet's writes queued behind each other. A crash of the process
    loses nothing either way; the fleet is simulated, a power cut of its machine is not its concern."""
    sync = base.outbox_sync if "outbox_sync" in base.model_fields_set else "normal"
    fleet = []
    for index in range(first, first + count):
        gw = gateway_id(index)
        fleet.append(base.model_copy(update={
            "gateway_id": gw,
            "link": "sim",
            "outbox_path": outbox_dir / f"outbox-{gw}.db",
            "mqtt_client_id": None,
            "sim_seed": index,
            "sim_pv_kw": 4.0 + index % 5,
            # Both families in a fleet, as in the field.
            "sim_module": "bp35a1" if index % 2 else "bp35c0",
            "backfill_days": min(base.backfill_days, demo_history_days(count)),
            "sim_installed_at": installed_at or base.sim_installed_at,
            "outbox_sync": sync,
        }))
    return fleet


def build_fleet(base: CollectorSettings, count: int, outbox_dir: Path, health: Health,
                first: int = 1, *, installed_at: datetime | None = None) -> list[Gateway]:
    return build_fleet_from(fleet_settings(base, count, outbox_dir, first, installed_at=installed_at), health)


def build_fleet_from(fleet: list[CollectorSettings], health: Health) -> list[Gateway]:
    return [build_gateway(settings, SimulatedModuleLink(settings), health) for settings in fleet]


async def run_fleet(gateways: list[Gateway], stop: asyncio.Event) -> None:
    await asyncio.to_thread(warmed_up, [g.link for g in gateways if isinstance(g.link, SimulatedModuleLink)],
                            stop.is_set)
    async with asyncio.TaskGroup() as group:
        for gateway in gateways:
            group.create_task(gateway.run(stop), name=f"gateway {gateway.uplink.gateway_id}")


def claiming(fleet: list[CollectorSettings], factory: list[DemoFactoryGateway],
             credentials_dir: Path) -> list[CollectorSettings]:
    """The fleet as gateways fresh from the factory: each knows only its serial and factory secret (and
    the broker URL with the shared provisioning login) and claims its identity on start.

    A simulated fleet claims all at once, in the process that answers the claims: each gateway waits
    CLAIM_WAIT_S_PER_GATEWAY for every gateway of the fleet (unless PMS_CLAIM_TIMEOUT_S says otherwise).
    With the field's 10 s, 300 gateways on a loaded machine (answers about 6 a second) gave up before
    their answer came, claimed again, and never got through: 2100 claims answered in six minutes, no
    gateway claimed."""
    updates: dict[str, Any] = {}
    if fleet and "claim_timeout_s" not in fleet[0].model_fields_set:
        updates["claim_timeout_s"] = max(fleet[0].claim_timeout_s, CLAIM_WAIT_S_PER_GATEWAY * len(fleet))
    return [settings.model_copy(update={"gateway_serial": made.serial, "factory_secret": SecretStr(made.factory_secret),
                                        "credentials_path": credentials_dir / f"{settings.gateway_id}.json",
                                        **updates})
            for settings, made in zip(fleet, factory, strict=True)]


async def run_provisioned_fleet(fleet: list[CollectorSettings], health: Health, stop: asyncio.Event) -> None:
    """Every gateway through the claim flow (pms_collector.provisioned_run), as `pms collector` runs one."""
    # Each gateway's first link is made and its meter warmed up before any gateway starts.
    first_links = {settings.gateway_id: SimulatedModuleLink(settings) for settings in fleet}
    await asyncio.to_thread(warmed_up, first_links.values(), stop.is_set)

    def build(settings: CollectorSettings, on_login_refused: Callable[[], None] | None,
              slots: SimulatedSlots) -> Gateway:
        # Software updates in process: installing remembers the version, a restart builds the gateway anew.
        link = first_links.pop(settings.gateway_id, None) or SimulatedModuleLink(settings)
        return build_gateway(settings, link, health, on_login_refused=on_login_refused,
                             slots=slots, health_filter=slots.health)

    async with asyncio.TaskGroup() as group:
        for settings in fleet:
            group.create_task(run_provisioned_with_simulated_updates(settings, stop, build),
                              name=f"gateway {settings.gateway_id}")
