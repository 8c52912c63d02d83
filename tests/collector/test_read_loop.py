"""The read loop over the whole stack (virtual module on a pty): live reads go on whatever the backfill does."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from echonet.sim.module import Fault
from pms_collector import metrics
from pms_collector.gateway import Gateway, GatewayHeartbeat, build_gateway
from pms_collector.link import SimulatedModuleLink
from pms_collector.meter import MeterReadError
from pms_collector.settings import CollectorSettings
from pms_common.health import Health
from pms_common.messages import Heartbeat, PowerReading
from pms_common.timeutil import JST
from tests.collector.waiting import eventually
from tests.conftest import free_port

START = datetime(2026, 6, 1, 9, 0, 20, tzinfo=JST)  # today's slots from 00:00 to 08:30 are still to refill
POWER_INTERVAL_S = 1.0
READ_TIMEOUT_S = 3.0
WINDOW_S = 10.0


def _settings(tmp_path: Path, name: str) -> CollectorSettings:
    run = uuid.uuid4().hex[:8]
    # No broker: nothing acks, so the outbox keeps every batch with the time it was stored.
    return CollectorSettings(link="sim", gateway_id=f"gw-{name}-{run}", mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
                             mqtt_client_id=f"c-{run}", outbox_path=tmp_path / "outbox.db",
                             power_interval_s=POWER_INTERVAL_S, slot_fallback_s=1, read_timeout_s=READ_TIMEOUT_S,
                             backfill_retry_s=8)


def _power_times(path: Path) -> list[float]:
    """When (wall clock) each power batch was stored in the outbox."""
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT created_at FROM batches WHERE has_energy = 0 ORDER BY seq")]


def _heartbeat(gateway: Gateway) -> GatewayHeartbeat:
    return GatewayHeartbeat(gateway_id=gateway.read_loop.gateway_id, firmware="test", link=gateway.link,
                            read_loop=gateway.read_loop, outbox=gateway.outbox, slots=gateway.slots,
                            config=gateway.config, started=0.0)


@pytest.mark.parametrize(("fault", "reason"), [
    (Fault.HISTORY_MISMATCH, "disagree"),  # E2/E4 of today disagree with the 09:00 slot read live
    (Fault.HISTORY_DAY_REFUSED, "refused"),  # the meter refuses E5
    (Fault.HISTORY_SILENT, "no answer"),  # E2 times out
])
def test_power_keeps_its_interval_while_the_backfill_fails(tmp_path: Path, fault: Fault, reason: str) -> None:
    settings = _settings(tmp_path, fault.value)
    link = SimulatedModuleLink(settings, start=START, speed=60)
    link.simulator.inject(fault, seconds=120)  # for the whole test
    gateway = build_gateway(settings, link, Health())
    failures_before = sum(sample.value for sample in metrics.BACKFILL_FAILURES.collect()[0].samples
                          if sample.name.endswith("_total")) if hasattr(metrics, "BACKFILL_FAILURES") else 0.0
    window: list[float] = []
    heartbeats: list[Heartbeat] = []

    async def scenario() -> None:
        await asyncio.wait_for(link.ready.wait(), 20)
        await eventually(lambda: gateway.slots.latest is not None, 10, "the last slot read live")
        await asyncio.sleep(WINDOW_S)
        window.extend(_power_times(settings.resolved_outbox_path()))
        assert gateway.slots.pending  # the backfill has failed all along
        heartbeats.append(_heartbeat(gateway)())

    stop = asyncio.Event()

    async def main() -> None:
        task = asyncio.create_task(gateway.run(stop))
        try:
            await asyncio.wait_for(scenario(), 60)
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)

    asyncio.run(main())
    # Power every second throughout: a failed day costs at most one E2 timeout, then the backfill
    # waits on its own backoff instead of going first at every turn.
    assert len(window) >= WINDOW_S / POWER_INTERVAL_S * 0.6, f"only {len(window)} power readings in {WINDOW_S} s"
    gaps = [b - a for a, b in itertools.pairwise(window)]
    assert max(gaps) < READ_TIMEOUT_S + 2 * POWER_INTERVAL_S, gaps
    # ...and the heartbeat says why the backfill waits, and until when.
    status = heartbeats[0].backfill
    assert status is not None and status.pending_days >= 1
    assert status.last_failure is not None and reason in status.last_failure, status.last_failure
    assert status.last_failure_at is not None and status.next_attempt_at is not None
    assert status.next_attempt_at > status.last_failure_at
    failures = sum(sample.value for sample in metrics.BACKFILL_FAILURES.collect()[0].samples
                   if sample.name.endswith("_total"))
    assert failures > failures_before


def test_a_stop_does_not_wait_for_a_meter_request_that_will_never_be_answered(tmp_path: Path) -> None:
    """A module gone silent leaves a power request waiting for its whole timeout (30 s here, the
    default): a stop then must still end the gateway within the read loop's grace, not the timeout."""
    settings = _settings(tmp_path, "silent").model_copy(update={"read_timeout_s": 30.0})
    link = SimulatedModuleLink(settings)
    gateway = build_gateway(settings, link, Health())
    stop = asyncio.Event()
    stopped_in: list[float] = []

    async def main() -> None:
        task = asyncio.create_task(gateway.run(stop))
        await asyncio.wait_for(link.ready.wait(), 20)
        await eventually(lambda: _power_times(settings.resolved_outbox_path()), 10, "a first power reading")
        link.simulator.inject(Fault.NO_RESPONSE, seconds=120)
        await asyncio.sleep(2 * POWER_INTERVAL_S)  # a power request is under way, unanswered
        began = asyncio.get_running_loop().time()
        stop.set()
        await asyncio.wait_for(task, 40)
        stopped_in.append(asyncio.get_running_loop().time() - began)

    asyncio.run(main())
    assert stopped_in[0] < 6.0, f"the stop took {stopped_in[0]:.1f} s"


def test_a_request_the_stop_cuts_off_is_not_a_read_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The stop closes the link under a request in flight, which fails ('session closed'): that is the
    stop, not the meter, so it is neither counted nor logged (a thousand gateways stopping wrote a
    thousand 'meter read failed (request N failed: session closed)' warnings)."""
    settings = _settings(tmp_path, "cutoff")
    link = SimulatedModuleLink(settings)
    gateway = build_gateway(settings, link, Health())
    stop = asyncio.Event()
    reader = gateway.read_loop.reader
    read_power = reader.read_power
    errors_at_stop: list[int] = []

    async def cut_off(measured_at: datetime) -> PowerReading | None:
        if not _power_times(settings.resolved_outbox_path()):
            return await read_power(measured_at)
        errors_at_stop.append(gateway.read_loop.read_errors)
        stop.set()  # the stop: the gateway passes it on to its parts, and the link closes its session
        await asyncio.sleep(0.5)
        raise MeterReadError("request 13 failed: session closed")  # ...under the request waiting on it

    reader.read_power = cut_off  # type: ignore[method-assign]

    async def main() -> None:
        await asyncio.wait_for(gateway.run(stop), 40)

    with caplog.at_level(logging.WARNING, logger="pms_collector.read_loop"):
        asyncio.run(main())
    assert errors_at_stop and gateway.read_loop.read_errors == errors_at_stop[0]
    assert not [r.getMessage() for r in caplog.records if "session closed" in r.getMessage()]
