"""Acceptance 2: bad configuration gives a sentence and an exit code, never a traceback."""

from __future__ import annotations

import os
import select
import threading
import tty
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until

RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "0123456789AB"


def _collector(pms_processes: Any, tmp_path: Path, **settings: str) -> tuple[int, str]:
    env = {"PMS_METRICS_PORT": "0", "PMS_MQTT_URL": "mqtt://127.0.0.1:1", "PMS_GATEWAY_ID": "gw-badconf",
           "PMS_OUTBOX_PATH": str(tmp_path / "outbox.db"), "PMS_BROUTE_ID": RBID, "PMS_BROUTE_PASSWORD": PASSWORD,
           **{f"PMS_{k.upper()}": v for k, v in settings.items()}}
    process = pms_processes(["collector"], env)
    code = process.proc.wait(60)
    return code, process.log()


@pytest.mark.parametrize(("settings", "says"), [
    ({"module_family": "bp99"}, "PMS_MODULE_FAMILY: Input should be 'auto', 'single-hop' or 'dual-stack'"),
    ({"broute_id": "tooshort"}, "broute_id must be the 32 letters and digits of the B-route ID"),
    ({"broute_password": ""}, "broute_password is empty"),
    ({"power_interval_s": "0.5"}, "PMS_POWER_INTERVAL_S: Input should be greater than or equal to 1"),
    ({"link": "lan", "meter_address": "meter.local"},
     "meter_address must be an IPv4 or IPv6 literal, not 'meter.local' (PMS_METER_ADDRESS)"),
    ({"link": "lan", "meter_address": "fe80::1"}, "an IPv6 meter needs lan_interface"),
    ({"link": "lan", "meter_address": "192.0.2.7", "lan_bind": "::1"}, "are of different IP versions"),
    ({"firmware_keys": '["ed25519:bm9wZQ=="]'}, "firmware key 1 is not an Ed25519 public key"),
])
def test_bad_settings_exit_2(pms_processes: Any, tmp_path: Path, settings: dict[str, str], says: str) -> None:
    code, log = _collector(pms_processes, tmp_path, device=str(tmp_path / "tty"), **settings)
    assert code == 2
    assert says in log and "Traceback" not in log


def test_a_missing_device_exits_3(pms_processes: Any, tmp_path: Path) -> None:
    code, log = _collector(pms_processes, tmp_path, device="/dev/ttyNOSUCHDONGLE")
    assert code == 3
    assert "cannot open serial device /dev/ttyNOSUCHDONGLE" in log and "Traceback" not in log


def test_a_lan_address_that_cannot_be_bound_exits_3(pms_processes: Any, tmp_path: Path) -> None:
    code, log = _collector(pms_processes, tmp_path, link="lan", lan_bind="192.0.2.1", lan_port="0")
    assert code == 3
    assert "cannot open ECHONET Lite UDP on [192.0.2.1]" in log and "(PMS_LAN_BIND=192.0.2.1)" in log
    assert "Traceback" not in log


def test_an_unwritable_outbox_exits_2(pms_processes: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, log = _collector(pms_processes, tmp_path, device="/dev/null", outbox_path=str(blocker / "outbox.db"))
    assert code == 2
    assert "cannot open the outbox" in log and "Traceback" not in log


def test_a_wrong_password_exits_4(pms_processes: Any, tmp_path: Path) -> None:
    tty = tmp_path / "tty"
    pms_processes(["sim", "--module", "bp35c0", "--link", str(tty), "--rbid", RBID, "--password", "THEREALONE12",
                   "--speed", "60", "--min-scan-duration", "4"], {}, name="sim")
    wait_until(tty.exists, 10, "the virtual module's pty")
    code, log = _collector(pms_processes, tmp_path, device=str(tty))
    assert code == 4
    assert "the meter refused to authenticate 3 times" in log and "Traceback" not in log


def test_a_device_that_is_no_skstack_module_exits_4(pms_processes: Any, tmp_path: Path) -> None:
    """A serial device that answers, but not as SKSTACK does (a modem, a GPS, the wrong dongle)."""
    main_fd, device_fd = os.openpty()
    tty.setraw(main_fd)
    stop = threading.Event()

    def modem() -> None:  # answers every line with what a Hayes modem would say
        while not stop.is_set():
            ready, _, _ = select.select([main_fd], [], [], 0.2)
            if ready and os.read(main_fd, 1024):
                os.write(main_fd, b"\r\nERROR\r\n")

    thread = threading.Thread(target=modem, daemon=True)
    thread.start()
    try:
        code, log = _collector(pms_processes, tmp_path, device=os.ttyname(device_fd))
    finally:
        stop.set()
        thread.join(5)
        os.close(main_fd)
        os.close(device_fd)
    assert code == 4
    assert "it is not a SKSTACK Wi-SUN module" in log and "Traceback" not in log
