"""The collector's footprint on a gateway: resident memory, CPU share, and slot-end → publish delay.

    .venv/bin/python bench/collector.py [--seconds 120] [--mqtt-port 1883]

For each power interval (60 s, then 1 s) it starts `pms sim --module bp35c0` (a virtual module
on a pty, meter at real speed, starting 20 s before a slot end) and `pms collector` on that pty as
separate processes, like a gateway would run them. It samples the collector's /proc figures
after a warm-up, and times the slot's energy reading from the meter's slot end to its arrival on
the broker. Targets: under 60 MB resident and under 2 % of one core at 60 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from _support import cpu_seconds, end_cleanly_on_sigterm, rss_mb
from paho.mqtt.enums import CallbackAPIVersion

from pms_common import timeutil
from pms_common.messages import ReadingsBatch

RBID = "00112233445566778899AABBCCDDEEFF"
PASSWORD = "0123456789AB"
class SlotWatch:
    """Arrival times of live (not backfilled) energy readings on the broker."""

    def __init__(self, port: int, gateway_id: str) -> None:
        self.arrivals: dict[datetime, float] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{gateway_id}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"pms/v1/gw/{gateway_id}/readings", qos=1)
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        batch = ReadingsBatch.model_validate_json(message.payload)
        for reading in batch.readings:
            if reading.kind == "energy" and not reading.backfilled:
                self.arrivals.setdefault(reading.slot_end, time.time())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def run_phase(interval_s: float, seconds: float, port: int, workdir: Path) -> dict[str, float]:
    gateway_id = f"gw-bench-{uuid.uuid4().hex[:6]}"
    tty = workdir / f"tty-{gateway_id}"
    now = timeutil.now_jst()
    slot_end = timeutil.slot_end_at_or_before(now) + timeutil.SLOT
    start = slot_end - timedelta(seconds=20)  # the meter's clock: a slot ends 20 s into the run
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMS_")}
    sim = subprocess.Popen([sys.executable, "-m", "pms.cli", "sim", "--module", "bp35c0", "--link", str(tty),
                            "--rbid", RBID, "--password", PASSWORD, "--start", start.isoformat(),
                            "--min-scan-duration", "4"], env=env, stdout=subprocess.PIPE, text=True)
    assert sim.stdout is not None
    sim.stdout.readline()  # printed once the module (and its clock) exists
    sim_t0 = time.time()
    watch = SlotWatch(port, gateway_id)
    collector_env = {**env, "PMS_DEVICE": str(tty), "PMS_BROUTE_ID": RBID, "PMS_BROUTE_PASSWORD": PASSWORD,
                     "PMS_GATEWAY_ID": gateway_id, "PMS_POWER_INTERVAL_S": str(interval_s), "PMS_METRICS_PORT": "0",
                     "PMS_MQTT_URL": f"mqtt://127.0.0.1:{port}", "PMS_OUTBOX_PATH": str(workdir / f"{gateway_id}.db"),
                     "PMS_LOG_LEVEL": "WARNING"}
    collector = subprocess.Popen([sys.executable, "-m", "pms.cli", "collector"], env=collector_env)
    try:
        warmup = 15.0
        time.sleep(warmup)
        cpu0, t0 = cpu_seconds([collector.pid]), time.monotonic()
        rss_peak = 0.0
        while time.monotonic() - t0 < seconds - warmup:
            rss_peak = max(rss_peak, rss_mb([collector.pid]))
            time.sleep(1)
        cpu_share = (cpu_seconds([collector.pid]) - cpu0) / (time.monotonic() - t0) * 100
        slot_real_end = sim_t0 + 20
        delay = watch.arrivals.get(slot_end)
        return {"interval_s": interval_s, "rss_mb": rss_peak, "cpu_percent": cpu_share,
                "slot_delay_s": float("nan") if delay is None else delay - slot_real_end}
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.wait(20)
        sim.send_signal(signal.SIGINT)
        sim.wait(10)
        watch.close()


def main() -> None:
    end_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="per power interval, warm-up included")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pms-bench-") as tmp:
        rows = [run_phase(interval, args.seconds, args.mqtt_port, Path(tmp)) for interval in (60.0, 1.0)]
    print(f"{'power interval':>15} {'resident MB':>12} {'CPU % of a core':>16} {'slot end → publish s':>21}")
    for row in rows:
        print(f"{row['interval_s']:>13.0f} s {row['rss_mb']:>12.1f} {row['cpu_percent']:>16.2f} "
              f"{row['slot_delay_s']:>21.2f}")
    print("targets: < 60 MB resident, < 2 % of one core at 60 s")


if __name__ == "__main__":
    main()
