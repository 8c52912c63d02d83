"""What the bench scripts share: free ports, servers of their own, and a process's figures from /proc.

A bench runs as `.venv/bin/python bench/NAME.py`, which puts this folder on sys.path, so each
script says `from _support import ...`. Linux only (the figures come from /proc).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_BROKER_CONF = REPO / "deploy" / "mosquitto" / "test-broker.conf"
TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A server the bench needs did not start."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, what: str, timeout_s: float = 30) -> None:
    """Return once `proc` listens on `port`; BenchError (with its log's tail) if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise BenchError(f"{what} did not listen on {port}:\n{log.read_text(errors='replace')[-3000:]}") \
                    from None
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 20) -> None:
    """Ask `proc` to end with `sig`, killing it if it has not within `timeout_s`."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def default_broker_config(port: int) -> str:
    """The repo's test broker configuration (the queue limits a big fleet needs) listening on `port`."""
    return TEST_BROKER_CONF.read_text() + f"\nlistener {port} 127.0.0.1\n"


def start_mosquitto(workdir: Path, config: Callable[[int], str] = default_broker_config) -> tuple[
        subprocess.Popen[bytes], int]:
    """Mosquitto on a free port with `config(port)` (default: the test broker), logging to workdir."""
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(config(port))
    conf.chmod(0o644)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    log = workdir / "mosquitto.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    wait_port(port, proc, log, "mosquitto")
    return proc, port


# ---- a process's figures ------------------------------------------------------------------------
def process_family(pid: int) -> list[int]:
    """The process and its descendants."""
    pids = [pid]
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            text = children.read_text()
        except OSError:  # the thread ended meanwhile
            continue
        for child in text.split():
            pids.extend(process_family(int(child)))
    return pids


def _status_field(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:  # ended meanwhile
        pass
    return 0


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    return total


def rss_mb(pids: Iterable[int]) -> float:
    """Resident memory of the processes, in MB."""
    return sum(_status_field(pid, "VmRSS") for pid in pids) / 1024


def thread_count(pids: Iterable[int]) -> int:
    """Threads of the processes, all told."""
    return sum(_status_field(pid, "Threads") for pid in pids)
