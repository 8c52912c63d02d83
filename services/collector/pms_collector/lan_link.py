"""A meter on the LAN (`link = "lan"`): ECHONET Lite over UDP, the same driver shape as the B-route link.

A HEMS controller or a Wi-SUN-to-Ethernet bridge answers for the meter as a 0x0288 object on the
LAN. There is no session to join, so "joined" here means "the meter answers": the link finds the
meter (at `meter_address`, or by multicast discovery of the 0x0288 node when none is set), probes
it, and is ready once it answers. Requests that go unanswered `lost_after` times in a row mean the
meter is gone: the link leaves ready, fails what is waiting, and probes again with backoff (finding
the meter anew by discovery when it was found that way, so a changed address is followed); when it
answers again that counts as a new join, and the read loop re-reads the scale and the clock and
refills the slots it missed from E2/E4 as after any rejoin.

The meter's pushes (EA/EB at each slot end, by multicast or unicast, INF or INFC) go to
`on_notification` when they come from the meter's host and object. A node profile announcing a
0x0288 object (D5, sent by a node when it starts) wakes the probing at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from datetime import datetime

from echonet import node_profile
from echonet.errors import EchonetError, LanTimeout, RequestError, UdpError
from echonet.frame import EOJ, ESV, NODE_PROFILE, SMART_METER, Frame, Property
from echonet.io.events import first_set
from echonet.io.lan_client import LanClient, Received
from echonet.io.udp import UdpConfig
from echonet.lan import same_host
from echonet.session import SessionState
from pms_common import timeutil

log = logging.getLogger(__name__)

METER_CLASS = (SMART_METER.class_group, SMART_METER.class_code)
OPERATION_STATUS = 0x80  # every object has it: the probe that asks "are you there?"
INSTANCE_LIST_NOTICE = 0xD5  # node profile: the instance list a node announces when it starts


def _is_meter(eoj: EOJ) -> bool:
    return (eoj.class_group, eoj.class_code) == METER_CLASS


class LanMeterLink:
    """The collector's link to a 0x0288 meter on the LAN, over one `LanClient`."""

    def __init__(self, config: UdpConfig, meter_address: str | None = None, *, discovery_s: float = 3.0,
                 attempt_timeout_s: float = 5.0, lost_after: int = 3, backoff_max_s: float = 60.0,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.configured_address = meter_address or None
        self.discovery_s = discovery_s
        self.attempt_timeout_s = attempt_timeout_s
        self.lost_after = lost_after
        self.backoff_max_s = backoff_max_s
        self.rng = rng or random.Random()
        self.joins = 0
        self.clock_rate = 1.0  # a real meter's clock; a sped-up simulated one is set by whoever builds it
        # The gateway's own clock (NTP-synchronised); beside a sped-up simulated meter, whoever builds
        # the link hands the simulated world's clock instead, as SimulatedModuleLink has it.
        self.world_now: Callable[[], datetime] = timeutil.now_jst
        self.ready = asyncio.Event()
        # Set once `run` has ended: a request then fails at once instead of waiting for a meter that
        # will not be found again (it held a stop up for the whole request timeout).
        self._stopped = asyncio.Event()
        self.state = SessionState.IDLE
        self.on_notification: Callable[[Frame], None] | None = None
        self.meter_host: str | None = self.configured_address
        self.meter_eoj = SMART_METER
        self.unanswered = 0  # requests in a row the meter left unanswered
        self.client: LanClient | None = None
        self._wake = asyncio.Event()
        self._restart = False
        self._join_waiters: list[asyncio.Future[None]] = []

    # ---- what the heartbeat shows -------------------------------------------------------------
    @property
    def module_family(self) -> str:
        return "lan"

    @property
    def lqi(self) -> int | None:
        return None

    @property
    def signal_dbm(self) -> int | None:
        return None

    @property
    def meter_address(self) -> str | None:
        """The meter's address as configured or as discovery picked it (None until found)."""
        return self.meter_host

    # ---- the application's side ---------------------------------------------------------------
    async def request(self, esv: ESV, properties: Iterable[Property], timeout_s: float) -> Frame:
        """Send one request to the meter and return its answer; a lost datagram is sent again
        while time remains (the same request again: a Get, or the E5 Set, may be repeated)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        props = tuple(properties)
        await first_set(self.ready, self._stopped, timeout_s=timeout_s)
        if self._stopped.is_set():
            raise RequestError("the LAN link is stopped")
        if not self.ready.is_set():
            raise RequestError(f"the LAN meter is {self._where()} and {self.state}, not answering")
        while True:
            client, host = self.client, self.meter_host
            if client is None or host is None or not self.ready.is_set():
                raise RequestError(f"the LAN meter at {host} was lost")
            remaining = end - loop.time()
            try:
                answer = await client.request(host, self.meter_eoj, esv, props,
                                              max(0.05, min(self.attempt_timeout_s, remaining)))
            except LanTimeout as exc:
                self.unanswered += 1
                if self.unanswered >= self.lost_after:
                    self._lose(f"{self.unanswered} requests in a row got no answer")
                if end - loop.time() <= 0.05 or not self.ready.is_set():
                    raise RequestError(f"no answer from the meter at {host} within {timeout_s:.1f} s") from exc
                continue
            self.unanswered = 0
            return answer

    async def wait_joined(self, *, after: int) -> None:
        while self.joins <= after:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._join_waiters.append(waiter)
            await waiter

    def rejoin(self) -> None:
        """Find and probe the meter again (by discovery when it was found that way)."""
        self._lose("rejoin requested")

    def restart(self) -> None:
        """Close and re-open the UDP endpoint, then find and probe the meter again."""
        self._restart = True
        self._lose("restart requested")

    # ---- the driver ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Drive the link until `stop`; raises UdpError if the endpoint never opens."""
        self._stopped.clear()
        try:
            await self._run(stop)
        finally:
            self._stopped.set()

    async def _run(self, stop: asyncio.Event) -> None:
        opened_once = False
        while not stop.is_set():
            try:
                async with LanClient(self.config) as client:
                    opened_once = True
                    self.client = client
                    pump = asyncio.create_task(self._pump_notifications(client))
                    try:
                        await self._serve(stop)
                    finally:
                        pump.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await pump
            except UdpError as exc:
                if not opened_once:
                    raise
                log.warning("the LAN endpoint failed (%s); re-opening in 5 s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 5.0)
            finally:
                self.client = None
                self._set_state(SessionState.IDLE if not stop.is_set() else SessionState.CLOSED, "endpoint closed")
        self._set_state(SessionState.CLOSED, "stopped")

    async def _serve(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            if self._restart:
                self._restart = False
                return
            if self.ready.is_set():
                await self._wait(stop, None)
                continue
            self._set_state(SessionState.PROBING, "looking for the meter")
            if await self._find_and_probe():
                attempt = 0
                self.unanswered = 0
                self.joins += 1
                self._set_state(SessionState.READY, f"the meter at {self.meter_host} ({self.meter_eoj}) answers")
                self.ready.set()
                for waiter in self._join_waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                self._join_waiters.clear()
                continue
            delay = min(self.backoff_max_s, 1.0 * 2**attempt) * self.rng.uniform(0.8, 1.2)
            attempt = min(attempt + 1, 8)
            self._set_state(SessionState.BACKOFF, f"no meter answers; looking again in {delay:.1f} s")
            await self._wait(stop, delay)

    async def _wait(self, stop: asyncio.Event, timeout_s: float | None) -> None:
        self._wake.clear()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _find_and_probe(self) -> bool:
        client = self.client
        assert client is not None
        if self.configured_address is None:
            await self._discover(client)
        host = self.meter_host
        if host is None:
            return False
        try:
            answer = await client.get(host, self.meter_eoj, [OPERATION_STATUS], self.attempt_timeout_s)
        except (LanTimeout, UdpError):
            return False
        return answer.esv in (ESV.GET_RES, ESV.GET_SNA)  # a refusal is an answer: someone is there

    async def _discover(self, client: LanClient) -> None:
        """Multicast for 0x0288 objects; keep the current meter if it is among them, else pick one."""
        try:
            nodes = await client.discover(self.discovery_s)
        except UdpError as exc:
            log.warning("meter discovery failed: %s", exc)
            return
        meters = sorted((host, eoj) for host, eojs in nodes.items() for eoj in eojs if _is_meter(eoj))
        if not meters:
            log.warning("no 0x0288 meter answered the multicast discovery (%d nodes answered)", len(nodes))
            return
        current = self.meter_host
        for host, eoj in meters:
            if current is not None and same_host(host, current):
                self.meter_eoj = eoj
                return
        host, eoj = meters[0]
        others = ", ".join(h for h, _ in meters[1:])
        if current is None:
            log.info("meter found by multicast discovery: %s (%s)%s", host, eoj,
                     f"; also answering: {others}" if others else "")
        else:
            log.warning("the meter at %s no longer answers discovery; now using %s (%s)", current, host, eoj)
        self.meter_host, self.meter_eoj = host, eoj

    def _lose(self, reason: str) -> None:
        if self.ready.is_set():
            log.warning("the LAN meter at %s is lost: %s", self.meter_host, reason)
            self.ready.clear()
            self._set_state(SessionState.BACKOFF, reason)
        self._wake.set()

    def _set_state(self, state: SessionState, reason: str) -> None:
        if state is not self.state:
            log.info("LAN meter link %s: %s", state, reason)
        self.state = state

    def _where(self) -> str:
        return f"at {self.meter_host}" if self.meter_host else "not found yet"

    async def _pump_notifications(self, client: LanClient) -> None:
        while True:
            received = await client.notifications.get()
            try:
                self._on_notification(received)
            except EchonetError as exc:  # a peer's bad announcement is dropped, never fatal
                log.debug("unusable notification from %s: %s", received.host, exc)

    def _on_notification(self, received: Received) -> None:
        frame = received.frame
        if _is_meter(frame.seoj):
            if self.meter_host is None or not same_host(received.host, self.meter_host):
                return  # another meter on the LAN, or one we have not picked
            if not self.ready.is_set():
                self._wake.set()  # it speaks: probe it now rather than after the backoff
            if self.on_notification is not None:
                self.on_notification(frame)
            return
        if frame.seoj != NODE_PROFILE or self.ready.is_set():
            return
        announced = frame.property(INSTANCE_LIST_NOTICE)
        if announced is None or not announced.edt:
            return
        eojs = node_profile.decode_value(INSTANCE_LIST_NOTICE, announced.edt)
        if any(_is_meter(eoj) for eoj in eojs):
            self._wake.set()  # a meter node (re)started: look for it now
