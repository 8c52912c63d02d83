"""A third-party B-route library, unchanged, against `pms sim --module ...` on a pseudo-terminal.

momonga (PyPI) drives ROHM BP35A1 (single-hop) and BP35C2 (dual-stack) modules: it sends ROPT with
a bare CR, resets the module with SKRESET, tells the families apart by the last EINFO field and
wants RSSI in ERXUDP (SKSREG SA2 1). If the simulator answers as those modules do, momonga reads
power and energy from it exactly as from a real dongle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import momonga
import pytest

from echonet import smart_meter as sm
from echonet.sim.pty_module import build_module, parser
from tests.conftest import PmsProcess, wait_until

RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "PASSWORD1234"
START = "2026-05-01T11:00:00+09:00"
SPEED = 60.0


@pytest.mark.integration
@pytest.mark.parametrize(("module", "device_type"), [("bp35a1", "BP35A1"), ("bp35c0", "BP35C2")])
def test_momonga_reads_power_and_energy(pms_processes: Callable[..., PmsProcess], tmp_path: Path, module: str,
                                        device_type: str) -> None:
    link = tmp_path / "ttyWISUN"
    argv = ["--module", module, "--link", str(link), "--rbid", RBID, "--password", PASSWORD,
            "--speed", str(SPEED), "--start", START, "--coefficient", "10", "--unit", "0.01"]
    sim: PmsProcess = pms_processes(["sim", *argv], name=f"sim-{module}")
    started = time.monotonic()
    wait_until(link.exists, 20, f"the simulator's link {link}")
    # The same meter the simulator runs, to know which registers it must have served.
    meter = build_module(parser().parse_args(argv)).meter

    client = momonga.Momonga(RBID, PASSWORD, str(link))
    client.internal_xmit_interval = 0.05  # its pause between requests, 5 s by default
    try:
        client.open()
        assert client.session_manager.skw.device_type.name == device_type
        power_w = client.get_instantaneous_power()
        forward_kwh = client.get_measured_cumulative_energy()
        reverse_kwh = client.get_measured_cumulative_energy(reverse=True)
        fixed = client.get_cumulative_energy_measured_at_fixed_time(reverse=True)
        elapsed_s = time.monotonic() - started
    finally:
        client.close()
    assert sim.alive(), sim.log()

    # momonga applied E1 (0.01) and D3 (10) itself: one register step is 0.1 kWh.
    assert client.energy_unit == 0.01 and client.energy_coefficient == 10
    start = datetime.fromisoformat(START)
    end = start + timedelta(seconds=(elapsed_s + 2) * SPEED)
    minutes = [start + timedelta(minutes=m) for m in range(int((end - start).total_seconds() // 60) + 2)]
    powers = [meter.power_w(moment) for moment in minutes]
    assert isinstance(power_w, int) and min(powers) <= power_w <= max(powers)
    first = meter.registers_kwh(start)
    last = meter.registers_kwh(end)
    assert forward_kwh is not None and reverse_kwh is not None
    assert first[0] - 0.1 <= forward_kwh <= last[0] + 0.1
    assert first[1] - 0.1 <= reverse_kwh <= last[1] + 0.1

    # EB: the sold register at the last slot end, stamped by the meter (momonga drops the zone).
    stamp = fixed["timestamp"]
    assert isinstance(stamp, datetime)
    slot_end = stamp.replace(tzinfo=sm.JST)
    assert slot_end.minute in (0, 30) and start - timedelta(minutes=30) <= slot_end <= end
    expected_raw = int(meter.registers_kwh_at_slot(slot_end)[1] / 0.1 + 1e-9)
    assert fixed["cumulative energy"] == pytest.approx(expected_raw * 0.1)
