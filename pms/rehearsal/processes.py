"""The rehearsal's processes: each started with its own log file, listed, and all stopped at the end.

Children get sessions of their own, so a Ctrl-C in the terminal reaches only the rehearsal, which
then stops them in the reverse order of starting (gateways first, the broker and stores last).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StartFailed(RuntimeError):
    """A part of the rehearsal did not start; the message names it and ends with its log's tail."""


@dataclass
class Running:
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    port: int | None = None
    where: str = ""  # what it serves, e.g. http://127.0.0.1:PORT/metrics

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Supervisor:
    log_dir: Path
    announce: Callable[[str], None] = print
    running: dict[str, Running] = field(default_factory=dict)
    stopped: list[Running] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, port: int | None = None,
              where: str = "") -> Running:
        if name in self.running and self.running[name].alive():
            raise StartFailed(f"{name} runs already (pid {self.running[name].pid})")
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        running = Running(name=name, argv=list(argv), env=dict(env), cwd=cwd, log_path=log_path, process=process,
                          port=port, where=where)
        self.running[name] = running
        self.announce(f"started {name}: pid {process.pid}" + (f", port {port}" if port else "") + f", log {log_path}")
        return running

    def restart(self, name: str) -> Running:
        """Start a stopped (or killed) part again with the same command, environment and port."""
        old = self.running[name]
        self.stop(name)
        return self.start(name, old.argv, env=old.env, cwd=old.cwd, port=old.port, where=old.where)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to a part (as a crash would); it stays listed as running until stopped or restarted."""
        running = self.running[name]
        if running.alive():
            running.process.send_signal(sig)
            running.process.wait(10)

    def stop(self, name: str, timeout_s: float = 15.0) -> None:
        running = self.running.pop(name, None)
        if running is None:
            return
        began = time.monotonic()
        if running.alive():
            running.process.terminate()
            try:
                running.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.announce(f"{name} (pid {running.pid}) ignored SIGTERM for {timeout_s:.0f} s: killed")
                _kill_group(running.pid)
                running.process.wait(5)
        _kill_group(running.pid)  # anything it left in its session (gunicorn's worker, a broker helper)
        self.stopped.append(running)
        self.announce(f"stopped {name} (pid {running.pid}, exit {running.process.returncode}) "
                      f"in {time.monotonic() - began:.1f} s")

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            try:
                self.stop(name)
            except Exception as exc:  # stop the rest whatever one of them does
                self.announce(f"stopping {name} failed: {exc!r}")

    def wait_ready(self, name: str, check: Callable[[], bool], timeout_s: float) -> float:
        """Poll `check` until it is true; fail at once when the process has exited. The seconds it took."""
        running = self.running[name]
        started = time.monotonic()
        while True:
            if not running.alive():
                raise StartFailed(f"{name} exited with {running.process.returncode} while starting; "
                                  f"its log ({running.log_path}) ends:\n{running.log_tail()}")
            try:
                if check():
                    return time.monotonic() - started
            except OSError:
                pass
            if time.monotonic() - started > timeout_s:
                raise StartFailed(f"{name} was not ready within {timeout_s:.0f} s; its log ({running.log_path}) "
                                  f"ends:\n{running.log_tail()}")
            time.sleep(0.1)

    def table(self) -> str:
        rows = [("process", "pid", "port", "serves", "log")]
        rows += [(r.name, str(r.pid), str(r.port or "-"), r.where or "-", str(r.log_path))
                 for r in self.running.values()]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return "\n".join("  ".join(cell.ljust(widths[i]) if i < 4 else cell for i, cell in enumerate(row))
                         for row in rows)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
