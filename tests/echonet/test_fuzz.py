"""A million random and mutated frames and lines: nothing raises but the library's own errors."""

import contextlib
import functools
import random
from collections.abc import Callable
from typing import Any

from echonet import node_profile
from echonet import smart_meter as sm
from echonet.errors import EchonetError
from echonet.frame import Frame, decode_frame, decode_frame_values
from echonet.skstack import SkstackParser
from echonet.skstack_events import PayloadMode
from tests.echonet.test_transcripts import FRAMES, _transcript

SEED_FRAMES = [bytes.fromhex(f) for f in FRAMES]
SEED_LINES = [line + b"\r\n" for form in ("bp35a1-hex", "bp35c0-binary-rssi")
              for line in _transcript(form)[0].split(b"\r\n") if line]
SEED_LINES += [b"EVENT 25 FE80:0000:0000:0000:021C:6400:030C:12A4 0\r\n", b"EPANDESC\r\n", b"  Channel:21\r\n",
               b"  PairID:00AB12CD\r\n", b"OK 01\r\n", b"FAIL ER04\r\n", b"EINFO a b 21 8888 FFFE 0\r\n"]
TABLES = {0x0288: sm, 0x0EF0: node_profile}


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        kind = rng.randrange(4)
        pos = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:
            out[pos:pos] = rng.randbytes(rng.randrange(1, 4))
        elif kind == 2:
            del out[pos : pos + rng.randrange(1, 4)]
        else:
            out = out[:pos]
    return bytes(out)


def test_frame_decoder_fuzz() -> None:
    rng = random.Random(20260501)
    decoded = 0
    for i in range(500_000):
        data = rng.randbytes(rng.randrange(40)) if i % 5 == 0 else _mutate(rng, SEED_FRAMES[i % len(SEED_FRAMES)])
        try:
            frame = decode_frame(data)
        except EchonetError:
            continue
        decoded += 1
        table = TABLES.get(frame.seoj.class_id)
        if table is None:
            continue
        for prop in frame.properties:
            if prop.epc in table.PROPERTIES:
                with contextlib.suppress(EchonetError):
                    table.decode_value(prop.epc, prop.edt)
    assert decoded > 30_000  # mutations keep many frames valid, so property decoders get fuzzed too


def test_line_parser_fuzz() -> None:
    rng = random.Random(7)
    parsers = [SkstackParser(mode) for mode in PayloadMode]
    events = 0
    for i in range(500_000):
        parser = parsers[i % 3]
        data = rng.randbytes(rng.randrange(30)) if i % 5 == 0 else _mutate(rng, SEED_LINES[i % len(SEED_LINES)])
        events += len(parser.feed(data))
    assert events > 100_000


def _outcome(decode: Callable[[], Any]) -> Any:
    try:
        return decode()
    except EchonetError as exc:
        return type(exc), str(exc)


def _two_passes(data: bytes) -> tuple[Frame, list[Any]]:
    frame = decode_frame(data)
    return frame, sm.decode_properties(frame.properties)


def test_fused_decoder_agrees_with_the_two_pass_path() -> None:
    """sm.decode_frame_with_values repeats decode_frame's loop for speed: same frames, values, errors."""
    rng = random.Random(3610)
    checked = 0
    for i in range(100_000):
        data = rng.randbytes(rng.randrange(40)) if i % 5 == 0 else _mutate(rng, SEED_FRAMES[i % len(SEED_FRAMES)])
        fused = _outcome(functools.partial(sm.decode_frame_with_values, data))
        two_pass = _outcome(functools.partial(_two_passes, data))
        assert fused == two_pass, data.hex()
        frame_only = _outcome(functools.partial(decode_frame_values, data, {}))
        assert (frame_only[0] if isinstance(frame_only[1], list) else frame_only) == _outcome(
            functools.partial(decode_frame, data))
        checked += isinstance(fused, tuple) and isinstance(fused[0], Frame)
    assert checked > 5_000
