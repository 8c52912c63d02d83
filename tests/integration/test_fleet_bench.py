"""bench/fleet.py in small: 20 gateways over two simulator processes, each with its own login, against
the bench's own Mosquitto, `pms ingest` and influxd, with a broker restart; nothing may be lost and
every figure the bench promises must be printed (the 10,000-gateway figures: docs/fleet-bench.md).
The same on NATS (--broker nats: 3 nodes, ingest on JetStream with two replicas) is a slow test.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "fleet.py"


@pytest.mark.skipif(shutil.which("influxd") is None, reason="influxd is not installed (scripts/test-services.sh)")
def test_a_small_fleet_loses_nothing_across_a_broker_restart_and_prints_every_figure() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    run = subprocess.run(
        [sys.executable, str(BENCH), "--gateways", "20", "--gateways-per-process", "10", "--speedup", "60",
         "--duration", "5", "--warmup", "2", "--outage", "2", "--drain-timeout", "40", "--json"],
        capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    printed = run.stdout
    for figure in ("connected gateways: 20 of 20,", "readings stored:", "publish → queryable", "p99",
                   "broker ", "ingest ", "influxd ", "simulators ", "% of a core", "RSS", "per 1,000 gateways",
                   "reconnected in", "acked in", "lost = 0"):
        assert figure in printed, f"{figure!r} not printed:\n{printed}"
    result = json.loads(printed.strip().splitlines()[-1])
    assert result["lost"] == 0 and result["unacked_at_end"] == 0, result
    assert result["stored_slots"] == result["produced_slots"] > 0, result
    assert result["stored_powers"] == result["produced_powers"] > 0, result
    assert result["connected"] == result["connected_after_restart"] == 20, result
    assert result["drain_s"] is not None and result["reconnect_s"] is not None, result
    assert result["publish_to_queryable_ms"]["samples"] > 0, result
    assert set(result["processes"]) == {"broker", "ingest", "influxd", "simulators"}, result
    assert all(p["rss_mb"] > 0 for p in result["processes"].values()), result


@pytest.mark.slow  # about 60 s: the 3-node cluster forms twice (start, full restart); 20 s of that is the outage
@pytest.mark.skipif(shutil.which("influxd") is None or shutil.which("nats-server") is None,
                    reason="influxd or nats-server is not installed (scripts/test-services.sh)")
def test_a_small_fleet_on_nats_is_stored_through_jetstream_by_two_replicas_and_loses_nothing() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    run = subprocess.run(
        [sys.executable, str(BENCH), "--broker", "nats", "--ingest-replicas", "2", "--gateways", "20",
         "--gateways-per-process", "10", "--speedup", "60", "--duration", "5", "--warmup", "2", "--outage", "2",
         "--drain-timeout", "60", "--json"],
        capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["ingest_source"] == "jetstream" and result["ingest_replicas"] == 2, result
    assert result["lost"] == 0 and result["unacked_at_end"] == 0, result
    assert result["stored_powers"] == result["produced_powers"] > 0, result
    assert result["stored_slots"] == result["produced_slots"] > 0, result
    assert result["connected"] == result["connected_after_restart"] == 20, result
    assert result["processes"]["broker"]["count"] == 3 and result["processes"]["ingest"]["count"] == 2, result
    # Reported, not required: Debian's nats-server 2.9.10 may take long to call its streams current
    # again after a full restart (docs/fleet-bench.md); the count above is what must hold.
    assert "nats_current_s" in result and isinstance(result["nats_not_current"], dict), result


@pytest.mark.skipif(shutil.which("influxd") is None, reason="influxd is not installed (scripts/test-services.sh)")
def test_a_bench_ended_with_sigterm_stops_what_it_started_and_removes_its_work_dir() -> None:
    """`timeout`, a CI runner and `kill` end a bench with SIGTERM: its broker, influxd, ingest and
    simulators must not run on as orphans, nor its work dir stay behind in /dev/shm."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    bench = subprocess.Popen(
        [sys.executable, str(BENCH), "--gateways", "20", "--gateways-per-process", "10", "--speedup", "60",
         "--duration", "300", "--warmup", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    printed: list[str] = []
    started: list[int] = []
    workdir: Path | None = None
    try:
        assert bench.stdout is not None
        for line in bench.stdout:  # up to the steady window: every process the bench starts is running
            printed.append(line)
            if line.startswith("connected gateways:"):
                break
        else:
            pytest.fail("the bench ended before its gateways connected:\n" + "".join(printed))
        workdir = Path(next(line for line in printed if line.startswith("work dir: ")).split()[2])
        started = process_family(bench.pid)
        assert workdir.is_dir() and len(started) >= 5, (workdir, started)  # broker, influxd, ingest, 2 sims
        bench.send_signal(signal.SIGTERM)
        rest, _ = bench.communicate(timeout=90)
        assert bench.returncode == 128 + signal.SIGTERM, "".join(printed) + rest
        assert workdir is not None and not workdir.exists()
        assert [pid for pid in started if Path(f"/proc/{pid}").exists()] == []
    finally:  # what the bench left behind when it failed, so that the next tests do not inherit it
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def process_family(pid: int) -> list[int]:
    """`pid`'s descendants, as the benches read them from /proc (bench/_support.py)."""
    spec = importlib.util.spec_from_file_location("bench_support", BENCH.parent / "_support.py")
    assert spec is not None and spec.loader is not None
    support = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(support)
    family: list[int] = support.process_family(pid)
    return family[1:]
