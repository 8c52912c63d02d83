"""settle_heap: what start-up made is moved out of the garbage collector's sight."""

from __future__ import annotations

import gc

from pms_common.service import settle_heap


def test_settle_heap_freezes_what_exists_and_gc_still_collects_new_cycles() -> None:
    try:
        settle_heap()
        frozen = gc.get_freeze_count()
        assert frozen > 1000  # this test process's modules, at least
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # garbage made after start-up is still found
    finally:
        gc.unfreeze()
