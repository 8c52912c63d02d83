"""The expected-yield model's cost: ms per plant-day (what the cross-plant list pays per plant, then
caches for 15 min) and seconds per plant-year (the longest /expected request).

    .venv/bin/python bench/expected_yield.py [--plants 100]

Measured (2 cores shared with other jobs, load ~3, pvlib 0.16, pandas 3.1, 50 plants): 36 ms per
plant-day on clear sky, 43 ms with hourly weather; 1.4-3.3 s per plant-year (noisy under load).
So a list of 1000 plants costs ~40 s once per 15 minutes (the cache in pms_api.expected): too slow
for big fleets (see docs/expected-yield.md), and an /expected request is bounded to a year of days
or two years of months.
"""

from __future__ import annotations

import argparse
import time
import warnings
from datetime import date

from pms_common import timeutil
from pms_pv import IrradianceSample, default_parameters, expected_slots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plants", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    params = default_parameters(49.5)
    start = timeutil.day_start(date(2026, 6, 16))
    day = [start + timeutil.SLOT * (i + 1) for i in range(48)]
    weather = [IrradianceSample(period_end=start + timeutil.SLOT * (2 * h + 2), ghi=400.0, source="bench")
               for h in range(24)]
    for label, samples in (("clear sky", []), ("hourly weather", weather)):
        began = time.perf_counter()
        for n in range(args.plants):
            expected_slots(35.0 + n * 0.01, 139.0, params, day, samples)
        per_day = (time.perf_counter() - began) / args.plants * 1000
        print(f"{label}: {per_day:.1f} ms per plant-day ({args.plants} plants: {per_day * args.plants / 1000:.1f} s)")
    year = [start + timeutil.SLOT * (i + 1) for i in range(48 * 366)]
    began = time.perf_counter()
    expected_slots(35.0, 139.0, params, year, [])
    print(f"clear sky: {time.perf_counter() - began:.2f} s per plant-year of 30-minute slots")


if __name__ == "__main__":
    main()
