"""The uplink's reconnect backoff against real brokers: a session that fails soon after its CONNACK
does not earn a fresh backoff (the delays grow), one that stayed up does (the next delay is short).

Both read the delays the uplink chose from its log, so they hold however loaded the machine is.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import pytest

from pms_collector.outbox import Outbox
from pms_collector.uplink import Uplink
from pms_common.health import Health
from pms_common.mqtt import BrokerAddress
from tests.collector.broker import OwnBroker
from tests.collector.uplink_peers import REFUSING_ACK_SUBSCRIPTION, NoConfig, heartbeat_of, no_commands
from tests.nats_server import nats_server

pytestmark = pytest.mark.integration

GW = "gw-backoff"


def _uplink(tmp_path: Path, broker: BrokerAddress, sessions: list[float], health: Health,
            stable_session_s: float = 120.0) -> tuple[Uplink, Outbox]:
    outbox = Outbox(tmp_path / "outbox.db", max_batches=100)

    @asynccontextmanager
    async def connect(will: aiomqtt.Will) -> AsyncIterator[aiomqtt.Client]:
        async with broker.client(identifier=GW, will=will, clean_session=True) as client:
            sessions.append(time.monotonic())
            yield client

    uplink = Uplink(outbox, heartbeat=lambda: heartbeat_of(GW), commands=no_commands, config=NoConfig(), batch_stored=asyncio.Event(),
                    health=health, gateway_id=GW, broker=broker, client_id=GW, max_in_flight=10,
                    resend_timeout_s=5, connect=connect, stable_session_s=stable_session_s)
    return uplink, outbox


def _delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The reconnect delays the uplink chose ("...; retrying in %.1f s"), in order."""
    return [float(r.args[-1]) for r in caplog.records  # type: ignore[index, arg-type]
            if r.name == "pms_common.mqtt" and "retrying in" in r.msg and f"collector {GW}" in str(r.args)]


async def _until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def test_sessions_refused_after_connack_back_off_further_each_time(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pms_common.mqtt")
    with nats_server(tmp_path / "nats", extra_conf=REFUSING_ACK_SUBSCRIPTION) as server:
        broker = BrokerAddress.parse(f"mqtt://gw:secret@127.0.0.1:{server.mqtt_port}")
        sessions: list[float] = []
        uplink, outbox = _uplink(tmp_path, broker, sessions, Health())

        async def main() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(uplink.run(stop))
            # Delays of 0.5-1, 1-2 and 2-4 s: four CONNACKs within ~7 s plus the connects.
            await _until(lambda: len(sessions) >= 4, 60, "four sessions")
            stop.set()
            await asyncio.wait_for(task, 10)

        try:
            asyncio.run(main())
        finally:
            outbox.close()
    delays = _delays(caplog)[:3]
    # Every session got its CONNACK and was refused its subscription; before the fix each delay
    # was 0.5-1 s (the backoff reset at CONNACK). Now each doubles (with jitter in its upper half).
    assert len(delays) == 3, delays
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0, delays
    gaps = [later - earlier for earlier, later in itertools.pairwise(sessions)]
    assert gaps[2] >= 2.0, gaps  # and the gateway did wait them out before dialling again


def test_a_session_that_stayed_up_starts_the_backoff_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pms_common.mqtt")
    own = OwnBroker(tmp_path)  # down at first: the dials are refused and the backoff grows
    broker = BrokerAddress.parse(own.url)
    sessions: list[float] = []
    health = Health()
    uplink, outbox = _uplink(tmp_path, broker, sessions, health, stable_session_s=1.0)
    before: list[int] = []  # how many delays were chosen before the session was lost

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(uplink.run(stop))
        await _until(lambda: len(_delays(caplog)) >= 2, 30, "two refused dials")
        await asyncio.to_thread(own.start)
        await _until(lambda: health.snapshot().get(f"mqtt:{GW}") is True, 30, "the session")
        await asyncio.sleep(1.5)  # longer than stable_session_s
        before.append(len(_delays(caplog)))
        await asyncio.to_thread(own.stop)
        await _until(lambda: len(_delays(caplog)) > before[0], 30, "the delay after the lost session")
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        asyncio.run(main())
    finally:
        own.stop()
        outbox.close()
    delays = _delays(caplog)
    assert before[0] >= 2 and delays[1] >= 1.0, delays  # the refused dials backed off
    # The session lasted longer than stable_session_s: the delay after it is back to 0.5-1 s.
    assert 0.5 <= delays[before[0]] <= 1.0, delays
