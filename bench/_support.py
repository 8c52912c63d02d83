"""What the bench scripts share: servers of their own on free ports, and a process's figures from /proc.

A bench runs as `.venv/bin/python bench/NAME.py`, which puts this folder on sys.path, so each
script says `from _support import ...`. Linux only (the figures come from /proc).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pms_common.ports import listener_port

REPO = Path(__file__).resolve().parents[1]
TEST_BROKER_CONF = REPO / "deploy" / "mosquitto" / "test-broker.conf"
TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A server the bench needs did not start."""


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


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path, what: str, timeout_s: float = 60) -> None:
    """Until the PMS service `proc` answers ok on its /healthz; it is killed and the log's tail raised
    if it exits or does not get there in time."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if b'"ok"' in answer.read():
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{what} did not become healthy:\n{log.read_text(errors='replace')[-3000:]}")


def end_cleanly_on_sigterm() -> None:
    """Make SIGTERM end the bench as Ctrl-C does, through its `finally` blocks.

    Python's default for SIGTERM ends the process on the spot: the brokers, influxd, ingest and
    simulators a bench started ran on as orphans, and its work dir (gigabytes in /dev/shm for a fleet)
    stayed. `timeout`, CI runners and `kill` all send SIGTERM."""
    def leave(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


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
    port = listener_port()
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


# ---- limits and servers the fleet bench adds ------------------------------------------------------
def raise_open_files_limit() -> int:
    """Raise this process's open-files limit to its hard limit (children inherit it); returns it.

    A simulated gateway holds four descriptors (its socket, and the outbox's database, WAL and
    shared-memory files), and the broker one per gateway: thousands of gateways pass the usual
    soft limit of 1024.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def production_broker_config(port: int, *, password_file: Path, acl_file: Path, data_dir: Path) -> str:
    """deploy/mosquitto/mosquitto.conf (auth, ACL, persistence, queue limits) with only its paths and
    port rewritten, and without the per-connection log lines (thousands of them in a fleet bench)."""
    import re

    text = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    for pattern, replacement in {
        r"^listener 1883\s*$": f"listener {port} 127.0.0.1",
        r"^password_file .*$": f"password_file {password_file}",
        r"^acl_file .*$": f"acl_file {acl_file}",
        r"^persistence_location .*$": f"persistence_location {data_dir}/",
        r"^log_type information$": "",
        r"^connection_messages true$": "connection_messages false",
    }.items():
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        if count != 1:
            raise BenchError(f"deploy/mosquitto/mosquitto.conf no longer has one line matching {pattern!r}")
    return text


def start_influxd(workdir: Path, timeout_s: float = 30) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's influxd (InfluxDB 1.x) on free ports with its data under workdir; returns it and its
    `host:port`, once it answers /ping."""
    import urllib.error
    import urllib.request

    binary = shutil.which("influxd")
    if binary is None:
        raise BenchError("influxd is not installed (apt-get install influxdb)")
    root = workdir / "influxd"
    root.mkdir()
    http_port, rpc_port = listener_port(), listener_port()
    conf = root / "influxdb.conf"
    conf.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{root / "meta"}"\n'
        f'[data]\n  dir = "{root / "data"}"\n  wal-dir = "{root / "wal"}"\n  query-log-enabled = false\n'
        f'[monitor]\n  store-enabled = false\n'
        f'[http]\n  bind-address = "127.0.0.1:{http_port}"\n  log-enabled = false\n'
    )
    log = root / "influxd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "-config", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    wait_port(http_port, proc, log, "influxd", timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ping", timeout=1) as answer:
                if answer.status == 204:
                    return proc, f"127.0.0.1:{http_port}"
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            stop_process(proc)
            raise BenchError(f"influxd did not answer /ping:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
