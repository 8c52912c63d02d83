"""`pms up` with a big fleet: start-up time, footprint and stop time.

    .venv/bin/python bench/pms_up.py [--plants 1000] [--seconds 60] [--embedded]

Starts its own Mosquitto on a free port below the ephemeral range (the repo's test configuration, whose queue limits a
thousand gateways need) and `pms up --plants N` against it (PMS_MQTT_URL), in a throwaway data
directory. It prints the time until every plant has a measured power (GET /api/v1/plants: an
integer current_sold_w), then samples the resident memory and CPU share of the pms process
(and its children, if any) for --seconds, then stops it with SIGINT and prints how long the
stop took. --embedded runs on the embedded broker instead (no PMS_MQTT_URL): for finding its limit.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from _support import (
    cpu_seconds,
    default_broker_config,
    end_cleanly_on_sigterm,
    process_family,
    rss_mb,
    stop_process,
    thread_count,
    wait_port,
)

from pms_common.ports import listener_port  # below the ephemeral range the gateways' sockets draw from

KEY = "bench-admin-key"
def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Mosquitto with the repo's test configuration on a listener port of ours."""
    port = listener_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(default_broker_config(port))
    conf.chmod(0o644)
    log = workdir / "mosquitto.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                                stdout=out, stderr=subprocess.STDOUT)
    wait_port(port, proc, log, "mosquitto")
    return proc, port


def measured(port: int, plants: int) -> int:
    """How many plants have a measured power now."""
    count = 0
    for offset in range(0, plants, 1000):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/plants?limit=1000&offset={offset}",
                                         headers={"Authorization": f"Bearer {KEY}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            items: list[dict[str, Any]] = json.loads(response.read())["items"]
        count += sum(isinstance(item["current_sold_w"], int) for item in items)
    return count


def wait_with_cpu(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, float]:
    """Wait for `proc` to end: its exit code and the CPU seconds it used in its life (from wait4, so
    that the stop's own share is known even under a machine's load)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"pms up did not stop within {timeout_s:.0f} s of SIGINT")
        time.sleep(0.1)


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    end_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plants", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0, help="footprint sampling after start-up")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--embedded", action="store_true", help="the embedded broker instead of Mosquitto")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between start-up progress lines")
    parser.add_argument("--log-level", default="WARNING", help="pms up's (INFO shows each gateway's link and uplink)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and logs")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="pms-up-bench-"))
    mosquitto: subprocess.Popen[bytes] | None = None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    env.update(PMS_ADMIN_API_KEY=KEY, PMS_LOG_LEVEL=args.log_level)
    if not args.embedded:
        mosquitto, mqtt_port = start_mosquitto(workdir)
        env["PMS_MQTT_URL"] = f"mqtt://127.0.0.1:{mqtt_port}"
    api_port = listener_port()
    log_path = workdir / "pms-up.log"
    print(f"pms up --plants {args.plants} on {'the embedded broker' if args.embedded else 'Mosquitto'} "
          f"(log: {log_path}); load average {load()} on {os.cpu_count()} CPUs", flush=True)
    started = time.monotonic()
    with log_path.open("ab") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "pms.cli", "up", "--plants", str(args.plants), "--port", str(api_port),
             "--mqtt-port", str(listener_port()), "--var", str(workdir / "var")],
            env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        count = 0
        deadline = started + args.start_timeout
        next_progress = started + args.progress
        while count < args.plants:
            if up.poll() is not None:
                raise SystemExit(f"pms up ended early ({up.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise SystemExit(f"only {count} of {args.plants} plants measured after {args.start_timeout:.0f} s")
            with contextlib.suppress(OSError):  # not serving yet
                count = measured(api_port, args.plants)
            if time.monotonic() >= next_progress:
                next_progress += args.progress
                pids = process_family(up.pid)
                print(f"  after {time.monotonic() - started:.0f} s: {count} of {args.plants} measured, "
                      f"{thread_count(pids)} threads, RSS {rss_mb(pids):.0f} MB", flush=True)
            time.sleep(2)
        start_s = time.monotonic() - started
        print(f"start-up: every plant measured after {start_s:.1f} s "
              f"(CPU {cpu_seconds(process_family(up.pid)):.0f} s used by then)", flush=True)

        pids = process_family(up.pid)
        cpu_before, wall_before = cpu_seconds(pids), time.monotonic()
        peak = rss_mb(pids)
        threads = thread_count(pids)
        while time.monotonic() - wall_before < args.seconds:
            time.sleep(1)
            pids = process_family(up.pid)
            peak = max(peak, rss_mb(pids))
            threads = max(threads, thread_count(pids))
        cpu_share = (cpu_seconds(pids) - cpu_before) / (time.monotonic() - wall_before)
        print(f"steady: {len(pids)} process(es), {threads} threads at most, RSS {rss_mb(pids):.0f} MB "
              f"(peak {peak:.0f} MB), CPU {cpu_share * 100:.0f} % of one core over {args.seconds:.0f} s", flush=True)
        print(f"measured at the end: {measured(api_port, args.plants)} of {args.plants}", flush=True)

        cpu_before_stop = cpu_seconds(process_family(up.pid))
        stop_started = time.monotonic()
        up.send_signal(signal.SIGINT)
        code, cpu_total = wait_with_cpu(up, 120)
        print(f"stop: exit code {code} after {time.monotonic() - stop_started:.1f} s "
              f"(CPU {cpu_total - cpu_before_stop:.1f} s used by the stop)", flush=True)
        tracebacks = log_path.read_text(errors="replace").count("Traceback")
        print(f"tracebacks in the log: {tracebacks}; load average {load()}", flush=True)
        return 0 if code == 0 else 1
    finally:
        if up.poll() is None:
            up.kill()
        if mosquitto is not None:
            stop_process(mosquitto, timeout_s=10)
        if args.keep:
            print(f"kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
