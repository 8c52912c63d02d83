"""Acceptance 3 of issue 16: a 3-node NATS cluster on loopback, simulated gateways (the collector's
own outbox and uplink) spread over its nodes, two `pms ingest` replicas on the JetStream consumer;
the node leading the readings stream and one ingest replica are killed mid-run (SIGKILL). Every
slot and power sample is counted in the store: none lost, none doubled.

The run is bench/nats_failover.py, which prints the same figures with CPU and RSS per process.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "nats_failover.py"


def _bench() -> ModuleType:
    if str(BENCH.parent) not in sys.path:
        sys.path.insert(0, str(BENCH.parent))  # as when run as a script: its helpers are `_support`, ...
    spec = importlib.util.spec_from_file_location("nats_failover_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_thirty_gateways_lose_nothing_when_a_node_and_an_ingest_replica_die(tmp_path: Path) -> None:
    figures = _bench().run(gateways=30, batches=12, interval_s=0.5, restart_after_s=3.0, ack_wait_s=10.0,
                           resend_timeout_s=5.0, deadline_s=90, workdir=tmp_path)
    report = "\n".join(figures.lines())
    assert (figures.lost, figures.doubled) == (0, 0), report
    assert figures.drained_s is not None, report
    assert figures.stored_by_replica["b"] > 0, report


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("node_comes_back", [True, False], ids=["node-restarted", "node-stays-down"])
def test_three_hundred_gateways_lose_nothing_when_a_node_and_an_ingest_replica_die(
        tmp_path: Path, node_comes_back: bool) -> None:
    figures = _bench().run(gateways=300, batches=20, interval_s=0.5, restart_after_s=5.0 if node_comes_back else None,
                           ack_wait_s=30.0, resend_timeout_s=10.0, deadline_s=300, workdir=tmp_path)
    report = "\n".join(figures.lines())
    assert (figures.lost, figures.doubled) == (0, 0), report
    assert figures.drained_s is not None, report
