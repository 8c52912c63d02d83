"""Software slots for simulated gateways (`pms up`, the fleet tests): the same update agent, no venvs.

Installing remembers the version; the restart the agent then asks for is the in-process gateway
being built again (its runner does that when `restart_requested` is set), reporting the new version.
`failing_versions` makes a version fail its health check, so a rollback can be shown too. The state
is kept in memory, shared by the gateway's successive incarnations through one SimulatedSlots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from pms_collector import update_state as us
from pms_collector.gateway import Gateway
from pms_collector.provisioned_run import run_provisioned
from pms_collector.settings import CollectorSettings
from pms_collector.update_agent import HealthFacts
from pms_collector.update_state import Outcome, SlotState, Trial
from pms_common import timeutil
from pms_common.firmware import version_of_firmware


class SimulatedSlots:
    def __init__(self, version: str, download_dir: Path, *, failing_versions: Iterable[str] = ()) -> None:
        self.state: SlotState = us.factory_state(version)
        self._download_dir = download_dir
        self.failing_versions = frozenset(failing_versions)
        self._running = version
        self.boot()

    @property
    def download_dir(self) -> Path:
        return self._download_dir

    def boot(self, now: datetime | None = None) -> str:
        """The launcher's decision, in process: call before each incarnation; the version it runs."""
        decision = us.decide_boot(self.state, now or timeutil.now_jst())
        self.state = decision.state
        self._running = decision.version
        return decision.version

    def running_version(self) -> str:
        return self._running

    def trial(self) -> Trial | None:
        return self.state.trial

    def last_outcome(self) -> Outcome | None:
        return self.state.last_outcome

    def record(self, outcome: Outcome) -> None:
        self.state = us.record_outcome(self.state, outcome)

    def install(self, image: Path, *, version: str, job_id: str, health_timeout_s: float) -> None:
        self.state = us.start_trial(us.begin_install(self.state, job_id, version), version=version,
                                    now=timeutil.now_jst(), health_timeout_s=health_timeout_s)

    def cancel_trial(self, outcome: Outcome) -> None:
        self.state = self.state.model_copy(update={"trial": None, "last_outcome": outcome})

    def commit(self, now: datetime) -> Outcome | None:
        self.state = us.commit_trial(self.state, now)
        return self.state.last_outcome

    def give_up(self, reason: str, now: datetime) -> None:
        self.state = us.rollback(self.state, reason, now)

    def health(self, facts: HealthFacts) -> HealthFacts:
        """The facts as a simulated version of `failing_versions` would have them: never an acked batch."""
        if self._running in self.failing_versions:
            return HealthFacts(broker_connected=facts.broker_connected, meter_joined=facts.meter_joined,
                               batch_acked=False)
        return facts


# Builds one incarnation of a simulated gateway from its settings (firmware naming the version to
# run), with these slots and the health filter of `SimulatedSlots.health`.
BuildSimulated = Callable[[CollectorSettings, "SimulatedSlots"], Gateway]


async def run_with_simulated_updates(settings: CollectorSettings, slots: SimulatedSlots, stop: asyncio.Event,
                                     build: BuildSimulated) -> None:
    """Run an in-process gateway as the launcher runs a real one: each time its update agent asks for
    a restart, decide the slot again and build the gateway anew, reporting the version it now runs."""
    while not stop.is_set():
        version = slots.boot()
        gateway = build(settings.model_copy(update={"firmware": f"pms-collector/{version}"}), slots)
        await gateway.run(stop)
        if not gateway.updates.restart_requested.is_set():
            return


# Builds a provisioned incarnation: as provisioned_run.BuildGateway, with the slots to use.
BuildProvisionedSimulated = Callable[[CollectorSettings, Callable[[], None] | None, "SimulatedSlots"], Gateway]


def simulated_slots_for(settings: CollectorSettings) -> SimulatedSlots:
    """A simulated gateway's slots: the version in its `firmware`, `sim_unhealthy_versions` failing."""
    downloads = settings.resolved_outbox_path().with_name(f"{settings.resolved_outbox_path().stem}-downloads")
    return SimulatedSlots(version_of_firmware(settings.firmware), downloads,
                          failing_versions=settings.sim_unhealthy_versions)


async def run_provisioned_with_simulated_updates(settings: CollectorSettings, stop: asyncio.Event,
                                                 build: BuildProvisionedSimulated) -> None:
    """`run_with_simulated_updates` through the claim flow (provisioned_run), as `pms up` runs its fleet."""
    slots = simulated_slots_for(settings)
    last: list[Gateway] = []

    def build_one(current: CollectorSettings, on_login_refused: Callable[[], None] | None) -> Gateway:
        gateway = build(current, on_login_refused, slots)
        last[:] = [gateway]
        return gateway

    while not stop.is_set():
        version = slots.boot()
        await run_provisioned(settings.model_copy(update={"firmware": f"pms-collector/{version}"}), stop, build_one)
        if not last or not last[0].updates.restart_requested.is_set():
            return
