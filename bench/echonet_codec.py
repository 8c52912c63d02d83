"""Frames decoded per second: `echonet` (every property to typed values) vs pychonet, same corpus, same run.

    PYTHONPATH=libs python bench/echonet_codec.py [--seconds 2]

pychonet is a bench-only dependency (pip install pychonet); the project never imports it. Its E2
function returns "Not implemented" where ours decodes the 48 registers: the corpus keeps E2 anyway.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from echonet import smart_meter as sm
from echonet.frame import CONTROLLER, ESV, SMART_METER, Frame, Property, decode_frame, encode_frame
from echonet.sim.meter import MeterProfile, SimulatedMeter


def corpus() -> list[bytes]:
    """Real-shaped 0x0288 frames: periodic E7/E8 reads, register reads, INF pushes, E2 history."""
    meter = SimulatedMeter(MeterProfile(installed_at=datetime(2026, 1, 1, tzinfo=sm.JST)))
    start = datetime(2026, 4, 1, tzinfo=sm.JST)
    shapes = [(0xE7,), (0xE7, 0xE8), (0xE0, 0xE3), (0xEA, 0xEB), (0xD3, 0xE1, 0xD7), (0xE2,)]
    frames = []
    for i in range(240):
        now = start + timedelta(minutes=7 * i)
        epcs = shapes[i % len(shapes)]
        request = encode_frame(Frame(i, CONTROLLER, SMART_METER, ESV.GET, tuple(Property(e) for e in epcs)))
        answer = meter.handle(request, now)
        assert answer is not None
        frames.append(answer)
    return frames


def ours(frame: bytes) -> object:
    """The frame and every property's typed value in one pass (what a collector reading needs)."""
    return sm.decode_frame_with_values(frame)


def ours_two_passes(frame: bytes) -> object:
    """decode_frame, then decode_properties over its properties: the same result, two loops."""
    return sm.decode_properties(decode_frame(frame).properties)


def pychonet_decoder() -> Callable[[bytes], object]:
    from pychonet.lib.functions import decodeEchonetMsg
    from pychonet.LowVoltageSmartElectricEnergyMeter import (
        _0288E2,
        _0288EA,
        LowVoltageSmartElectricEnergyMeter,
    )

    functions: dict[int, object] = dict(LowVoltageSmartElectricEnergyMeter.EPC_FUNCTIONS)
    # pychonet ships these decoders but leaves them out of its table; use them, to compare like with like.
    functions.update({0xE2: _0288E2, 0xEA: _0288EA, 0xEB: _0288EA})

    def decode(frame: bytes) -> object:
        message = decodeEchonetMsg(frame)
        values = []
        for opc in message["OPC"]:
            function = functions.get(opc["EPC"])
            if isinstance(function, list):
                values.append(function[0](opc["EDT"], *function[1:]))
            elif callable(function):
                values.append(function(opc["EDT"]))
        return values

    return decode


def rate(decode: Callable[[bytes], object], frames: list[bytes], seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for frame in frames:
            decode(frame)
        count += len(frames)
    return count / elapsed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=0.5, help="length of one timed round")
    p.add_argument("--rounds", type=int, default=5, help="rounds per decoder, interleaved; best one counts")
    args = p.parse_args()
    frames = corpus()
    print(f"corpus: {len(frames)} frames, {sum(map(len, frames))} bytes")
    try:
        theirs: Callable[[bytes], object] | None = pychonet_decoder()
    except ImportError:
        theirs = None
    # Interleaved rounds, best of each: a busy machine slows both alike instead of one by luck.
    ours_best = two_best = theirs_best = 0.0
    for _ in range(args.rounds):
        ours_best = max(ours_best, rate(ours, frames, args.seconds))
        two_best = max(two_best, rate(ours_two_passes, frames, args.seconds))
        if theirs is not None:
            theirs_best = max(theirs_best, rate(theirs, frames, args.seconds))
    print(f"echonet   {ours_best:12,.0f} frames/s  (decode_frame_with_values: every property to typed values)")
    print(f"          {two_best:12,.0f} frames/s  (decode_frame + decode_properties, two passes)")
    if theirs is None:
        print("pychonet  not installed (pip install pychonet)")
        return
    print(f"pychonet  {theirs_best:12,.0f} frames/s  (decodeEchonetMsg + its 0x0288 EPC functions)")
    print(f"ratio     {ours_best / theirs_best:12.2f}x  (two passes: {two_best / theirs_best:.2f}x)")


if __name__ == "__main__":
    main()
