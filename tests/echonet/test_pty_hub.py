"""One thread serves every virtual module of a process: many modules, idle ones at no cost, a stuck one
holding up no other."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from echonet import smart_meter as sm
from echonet.sim.clock import SimClock
from echonet.sim.fault_schedule import ScheduledFault
from echonet.sim.meter import MeterProfile, SimulatedMeter
from echonet.sim.module import Fault, ModuleConfig, VirtualModule
from echonet.sim.pty_hub import PtyHub
from echonet.sim.pty_module import PtySimulator
from echonet.skstack_events import Family
from tests.conftest import wait_until

# Twenty minutes before a slot end: an idle module has no reason to wake during a test.
START = datetime(2026, 6, 1, 12, 10, tzinfo=sm.JST)


def virtual_module(speed: float = 1.0) -> VirtualModule:
    meter = SimulatedMeter(MeterProfile(installed_at=START - timedelta(days=2)))
    config = ModuleConfig(family=Family.DUAL_STACK, rbid="0" * 32, password="P" * 12, speed=100)
    return VirtualModule(config, meter, SimClock(START, speed, time.monotonic()))


@pytest.fixture
def hub_and_sims(tmp_path: Path) -> Iterator[tuple[PtyHub, list[PtySimulator]]]:
    hub = PtyHub()
    sims: list[PtySimulator] = []
    yield hub, sims
    for sim in sims:
        sim.stop()


def ask(link: str, command: bytes, expect: bytes, timeout_s: float = 5.0) -> bytes:
    """Write `command` to the module behind `link` and read until `expect` comes back."""
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        os.write(fd, command)
        got = b""
        deadline = time.monotonic() + timeout_s
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while expect not in got:
            left = deadline - time.monotonic()
            assert left > 0, f"no {expect!r} from {link} within {timeout_s} s (got {got!r})"
            if poller.poll(int(left * 1000)):
                got += os.read(fd, 4096)
        return got
    finally:
        os.close(fd)


def test_many_modules_are_served_by_one_thread(tmp_path: Path,
                                              hub_and_sims: tuple[PtyHub, list[PtySimulator]]) -> None:
    hub, sims = hub_and_sims
    threads_before = threading.active_count()
    for n in range(40):
        sims.append(PtySimulator(virtual_module(), str(tmp_path / f"tty{n}"), hub))
        sims[-1].start()
    assert threading.active_count() <= threads_before + 1
    for n in (0, 17, 39):
        assert b"EVER" in ask(str(tmp_path / f"tty{n}"), b"SKVER\r\n", b"OK\r\n")
    assert hub.module_count == 40
    for sim in sims:
        sim.stop()
    assert hub.module_count == 0 and not any(Path(sim.link_path).exists() for sim in sims)
    sims.clear()


def test_idle_modules_do_not_wake_the_thread(tmp_path: Path,
                                            hub_and_sims: tuple[PtyHub, list[PtySimulator]]) -> None:
    hub, sims = hub_and_sims
    for n in range(40):
        sims.append(PtySimulator(virtual_module(), str(tmp_path / f"tty{n}"), hub))
        sims[-1].start()
    ask(str(tmp_path / "tty0"), b"SKVER\r\n", b"OK\r\n")
    wait_until(lambda: hub.warming_count == 0, 10, "the meters' register sums added up")
    loops = hub.loops
    time.sleep(1.5)
    # Forty threads polling every half second woke 120 times here; idle modules now wake nothing.
    assert hub.loops - loops <= 2


def test_a_module_nobody_reads_holds_up_no_other(tmp_path: Path,
                                                hub_and_sims: tuple[PtyHub, list[PtySimulator]]) -> None:
    hub, sims = hub_and_sims
    unread = PtySimulator(virtual_module(), str(tmp_path / "unread"), hub)
    other = PtySimulator(virtual_module(), str(tmp_path / "other"), hub)
    sims += [unread, other]
    unread.start()
    other.start()
    for _ in range(3000):  # noise lines: far more than a pty holds (about 4 KB before its reader reads)
        unread.inject(Fault.GARBAGE)
    assert b"EVER" in ask(str(tmp_path / "other"), b"SKVER\r\n", b"OK\r\n")
    # What the pty could not take waits, and is all there for a reader that comes.
    assert b"EVENT 2" in ask(str(tmp_path / "unread"), b"", b"EVENT 2\r\n")


def test_meters_add_up_their_registers_between_answers(tmp_path: Path,
                                                      hub_and_sims: tuple[PtyHub, list[PtySimulator]]) -> None:
    """A meter's first read adds up every slot since its installation: the hub does that beforehand,
    a step at a time, so that a thousand meters' first reads do not hold up every answer at once."""
    hub, sims = hub_and_sims
    module = virtual_module()
    meter = module.meter
    sims.append(PtySimulator(module, str(tmp_path / "tty"), hub))
    sims[0].start()
    wait_until(lambda: hub.module_count == 1 and hub.warming_count == 0, 10, "the register sums added up")
    shown = meter.displayed_time(module.meter_clock(time.monotonic()))
    assert meter.add_up_registers(shown, 1) is False  # two days of slots, all added up already


def test_a_scheduled_fault_wakes_its_module_on_time(tmp_path: Path,
                                                   hub_and_sims: tuple[PtyHub, list[PtySimulator]]) -> None:
    hub, sims = hub_and_sims
    sim = PtySimulator(virtual_module(), str(tmp_path / "tty"), hub)
    sims.append(sim)
    runner = threading.Thread(target=sim.run, args=((ScheduledFault(Fault.ARIB_LIMIT, 0.5, 0.5),),), daemon=True)
    fd = os.open(sim.link_path, os.O_RDWR | os.O_NOCTTY)
    try:
        runner.start()
        got = b""
        deadline = time.monotonic() + 5
        while b"EVENT 33" not in got and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                got += os.read(fd, 4096)
        # EVENT 32 at 0.5 s, EVENT 33 when the pause ends 0.5 s later, with no input to wake the module.
        assert b"EVENT 32" in got and b"EVENT 33" in got, got
    finally:
        os.close(fd)
    sim.stop()
    runner.join(5)
    assert not runner.is_alive()  # run() returns on stop
    sims.clear()


def test_the_thread_survives_a_descriptor_closed_behind_its_back(tmp_path: Path,
                                                                  hub_and_sims: tuple[PtyHub, list[PtySimulator]]) -> None:
    """A module closed by someone else while served (its descriptor number then reused by a new pty)
    must not end the thread: every other module, and the new one, is still answered."""
    hub, sims = hub_and_sims
    first = PtySimulator(virtual_module(), str(tmp_path / "tty0"), hub=hub)
    other = PtySimulator(virtual_module(), str(tmp_path / "tty1"), hub=hub)
    sims.extend([first, other])
    first.start()
    other.start()
    ask(first.link_path, b"SKVER\r\n", b"OK\r\n")
    first.close()  # behind the hub's back: it still polls that descriptor number
    reused = PtySimulator(virtual_module(), str(tmp_path / "tty2"), hub=hub)
    sims.append(reused)
    reused.start()
    assert b"EVER" in ask(reused.link_path, b"SKVER\r\n", b"OK\r\n")
    assert b"EVER" in ask(other.link_path, b"SKVER\r\n", b"OK\r\n")
    assert hub._thread is not None and hub._thread.is_alive()
