"""Shared test helpers: free ports, waiting for conditions, running `pms` commands as processes."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pms_common import timeutil
from pms_common.ports import listener_port
from tests.dynsec_broker import DynsecBroker

MOSQUITTO = ("127.0.0.1", 1883)
# A weekday noon in Japan, far from any day, month or slot boundary.
NOON = datetime(2026, 6, 1, 12, 0, tzinfo=timeutil.JST)
PINNED_NOON = datetime(2026, 6, 17, 12, 0, tzinfo=timeutil.JST)


@pytest.fixture
def noon() -> datetime:
    """A fixed JST noon for tests that pass time explicitly (sans-IO code, stores, models)."""
    return NOON


@pytest.fixture
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Pins "now" (timeutil.now_jst, the one clock the services read) to PINNED_NOON and lets it tick.

    Tests that write readings "a few minutes ago" and read back "today" would otherwise straddle
    Japan's midnight when CI runs just after 15:00 UTC.
    """
    started = time.monotonic()
    monkeypatch.setattr(timeutil, "now_jst", lambda: PINNED_NOON + timedelta(seconds=time.monotonic() - started))
    return PINNED_NOON


def free_port() -> int:
    """A loopback port for a server a test starts, below the ephemeral range (pms_common.ports says why)."""
    return listener_port()


def wait_until(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error!r})")


class PmsProcess:
    """A `pms <command>` child process with its own environment and a log file."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pms.cli", *args], env=env, cwd=cwd, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return int(self.proc.returncode)


@pytest.fixture
def pms_processes(tmp_path: Path) -> Iterator[Callable[..., PmsProcess]]:
    started: list[PmsProcess] = []

    def start(args: list[str], env: dict[str, str] | None = None, name: str | None = None) -> PmsProcess:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
        full_env.update(env or {})
        log_path = tmp_path / f"{name or args[0]}-{len(started)}.log"
        process = PmsProcess(args, full_env, tmp_path, log_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop(signal.SIGKILL if process.alive() else signal.SIGTERM)


def mosquitto_available() -> bool:
    try:
        with socket.create_connection(MOSQUITTO, timeout=1):
            return True
    except OSError:
        return False


# The shared Mosquitto on 1883 is one broker for the whole machine, with the same topics for every test. A test
# taking the `mosquitto` fixture holds this lock from its setup to its teardown, so that no two tests use the
# broker at once, whether they run in two pytest-xdist workers (`make test` runs two) or in two pytest runs.
# (A lock rather than an xdist group: xdist 3.8's grouping does not take with pytest 9.2's node ids.)
SHARED_MOSQUITTO_LOCK = Path(tempfile.gettempdir()) / "pms-tests-shared-mosquitto.lock"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if "mosquitto" not in getattr(item, "fixturenames", ()):
        return (yield)
    with SHARED_MOSQUITTO_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return (yield)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def mosquitto() -> str:
    """The shared real Mosquitto on 127.0.0.1:1883; the suite fails (never skips) without it."""
    assert mosquitto_available(), "Mosquitto is not listening on 127.0.0.1:1883 (make test starts it)"
    return "mqtt://127.0.0.1:1883"


@pytest.fixture
def dynsec_broker() -> Iterator[DynsecBroker]:
    """A real Mosquitto 2.0 with the dynamic-security plugin on a free port, with the production service
    logins made (tests/dynsec_broker.py: `.admin_address`, `.provisioning`, `.services`, `.url(login)`)."""
    broker = DynsecBroker()
    try:
        broker.start()
        broker.make_service_logins()
        yield broker
    finally:
        broker.remove()


# A LAN inside `network_namespace()`: a veth pair, the meter's side `vea`, the gateway's side `veb`.
LAN_METER, LAN_METER_MOVED, LAN_GATEWAY = "10.36.10.1", "10.36.10.3", "10.36.10.2"
_CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def network_namespace() -> Iterator[None]:
    """Run the calling thread in a fresh network namespace with a LAN of its own (needs root).

    Network namespaces belong to threads: sockets this thread opens meanwhile (and threads and
    processes it starts) live in the new one, on the real ECHONET Lite port 3610 and its multicast
    group, seeing no other test's traffic. IPv4 on the veth pair: `vea` has LAN_METER and
    LAN_METER_MOVED, `veb` has LAN_GATEWAY; IPv6: fd00::a on vea, fd00::b on veb.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    with open("/proc/thread-self/ns/net") as home:
        if libc.unshare(_CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) failed: network namespaces need root")
        try:
            for command in ("link set lo up", "link add vea type veth peer name veb", "link set vea up",
                            "link set veb up", f"addr add {LAN_METER}/24 dev vea",
                            f"addr add {LAN_METER_MOVED}/24 dev vea", f"addr add {LAN_GATEWAY}/24 dev veb",
                            "-6 addr add fd00::a/64 dev vea nodad", "-6 addr add fd00::b/64 dev veb nodad"):
                subprocess.run(["ip", *command.split()], check=True, capture_output=True)
            yield
        finally:
            if libc.setns(home.fileno(), _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the test's own network namespace failed")
