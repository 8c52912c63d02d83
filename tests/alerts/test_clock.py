"""The file clock of scripted tests: the time written in a file, the last good one while it changes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from pms_alerts.clock import FileClock, SystemClock
from pms_common.timeutil import JST


def test_file_clock_reads_the_time_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    clock = FileClock(path)
    with pytest.raises(RuntimeError, match="holds no time with an offset"):
        clock()
    path.write_text("2026-06-01T23:59:30+09:00\n")
    assert clock() == datetime(2026, 6, 1, 23, 59, 30, tzinfo=JST)
    path.write_text("2026-06-01T15:00:00+00:00")
    assert clock() == datetime(2026, 6, 2, 0, 0, tzinfo=JST) and clock().tzinfo == JST
    path.write_text("")  # being rewritten
    assert clock() == datetime(2026, 6, 2, 0, 0, tzinfo=JST)
    path.write_text("2026-06-02T00:05:00")  # no offset: refused
    assert clock() == datetime(2026, 6, 2, 0, 0, tzinfo=JST)


def test_system_clock_is_aware() -> None:
    assert SystemClock()().tzinfo is not None
