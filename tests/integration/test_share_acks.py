"""Two `pms ingest` replicas on Mosquitto's round-robin `$share`, gateways running the collector's
outbox and uplink: nothing lost, nothing counted twice, and (with selective acks) no resends.

The run itself is bench/share_acks.py, which prints the same figures beside those of gateways that
ignore the selective part of the ack (as collectors did before it).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "share_acks.py"


def _bench() -> ModuleType:
    if str(BENCH.parent) not in sys.path:
        sys.path.insert(0, str(BENCH.parent))  # as when run as a script: its helpers are `_support`
    spec = importlib.util.spec_from_file_location("share_acks_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def test_two_replicas_on_a_round_robin_share_advance_every_gateway_without_resends(tmp_path: Path) -> None:
    figures = _bench().run(selective=True, gateways=4, batches=30, interval_s=0.05, resend_timeout_s=2.0,
                           deadline_s=60, workdir=tmp_path)
    assert (figures.lost, figures.doubled) == (0, 0), figures.line()
    assert figures.drained_s is not None, figures.line()
    assert all(stored > 0 for stored in figures.stored_by_replica), f"both replicas took batches: {figures.line()}"
    # Near zero: a resend needs an ack slower than the 2 s timeout, which only a stalled machine makes.
    assert sum(figures.resends.values()) <= 2, figures.line()
