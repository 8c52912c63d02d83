"""`pms echonet decode`: module log lines or hex frames in, one JSON object per input line out.

Accepts ERXUDP lines of both families (hex payload), raw hex frames (spaces allowed), EVENT lines
and EPANDESC blocks. Frame properties are decoded through the class tables (0x0288 and the node
profile), so this tool shows exactly what the collector would read. A line that cannot be decoded
prints {"error": ...} and the tool goes on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any, TextIO

from echonet import node_profile, smart_meter
from echonet.errors import EchonetError
from echonet.frame import EOJ, Frame, decode_frame
from echonet.skstack import SkstackParser
from echonet.skstack_events import Garbage, ModuleEvent, PanDescriptor, PayloadMode, RxUdp

_REQUESTS = frozenset({0x60, 0x61, 0x62, 0x63, 0x6E})


def json_value(value: Any, epc: int, kwh_per_step: float | None, *, register: bool = False) -> Any:
    """A decoded table value as JSON (the shapes documented in docs/echonet.md). `register`: the
    value is a raw cumulative energy register (the 0x0288 table's kind), shown with its kWh."""
    if isinstance(value, smart_meter.Currents):
        return {"r": value.r_a, "t": value.t_a}
    if isinstance(value, smart_meter.TimedRegister):
        out: dict[str, Any] = {"time": value.time.isoformat(), "raw": value.raw}
        if kwh_per_step is not None and value.raw is not None:
            out["kwh"] = round(value.raw * kwh_per_step, 6)
        return out
    if isinstance(value, smart_meter.DayHistory):
        return {"day": value.day, "raw": list(value.raw)}
    if isinstance(value, smart_meter.History2):
        return {"time": value.time.isoformat(), "raw": [{"forward": f, "reverse": r} for f, r in value.segments]}
    if isinstance(value, smart_meter.History2Request):
        return {"time": value.time.isoformat(), "segments": value.segments}
    if register and (value is None or isinstance(value, int)):
        energy: dict[str, Any] = {"raw": value}
        if kwh_per_step is not None and value is not None:
            energy["kwh"] = round(value * kwh_per_step, 6)
        return energy
    if isinstance(value, tuple) and value and isinstance(value[0], EOJ):
        return [str(eoj) for eoj in value]
    if isinstance(value, tuple) and epc in (0x9D, 0x9E, 0x9F):
        return [f"{e:02X}" for e in value]
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def frame_json(frame: Frame, kwh_per_step: float | None = None) -> dict[str, Any]:
    # Requests are read against the object they address, everything else against the sender.
    eoj = frame.deoj if frame.esv in _REQUESTS else frame.seoj
    table: Any = {smart_meter.CLASS_ID: smart_meter, node_profile.CLASS_ID: node_profile}.get(eoj.class_id)
    props = []
    for prop in frame.properties:
        entry: dict[str, Any] = {"epc": f"{prop.epc:02X}", "name": None, "edt": prop.edt.hex().upper(),
                                 "value": None}
        spec = table.PROPERTIES.get(prop.epc) if table is not None else None
        if spec is not None:
            entry["name"] = spec.name
            if prop.edt:
                try:
                    register = isinstance(spec, smart_meter.PropertySpec) and spec.kind is smart_meter.Kind.REGISTER
                    entry["value"] = json_value(spec.decode_edt(prop.edt), prop.epc, kwh_per_step, register=register)
                except EchonetError as exc:
                    entry["error"] = str(exc)
        props.append(entry)
    return {"tid": frame.tid, "seoj": str(frame.seoj), "deoj": str(frame.deoj), "esv": f"{frame.esv:02X}",
            "properties": props}


class LineDecoder:
    def __init__(self, kwh_per_step: float | None = None) -> None:
        self.kwh_per_step = kwh_per_step
        # Log lines hold hex payloads: a binary record cannot survive being written as a text line.
        self.parser = SkstackParser(PayloadMode.HEX)

    def decode(self, line: str) -> dict[str, Any]:
        text = line.strip()
        if not text:
            return {"error": "empty line"}
        compact = text.replace(" ", "")
        if compact[:4] in ("1081", "1082") and all(c in "0123456789abcdefABCDEF" for c in compact):
            return self._frame(bytes.fromhex(compact) if len(compact) % 2 == 0 else b"")
        events = self.parser.feed(line.rstrip("\r\n").encode("utf-8", "replace") + b"\r\n")
        if not events:
            return {"epandesc": "field"} if line.startswith(" ") or text == "EPANDESC" else {"error": "incomplete"}
        event = events[-1]
        if isinstance(event, RxUdp):
            out = self._frame(event.data)
            out.update({"sender": event.sender, "side": event.side, "rssi": event.rssi})
            return out
        if isinstance(event, ModuleEvent):
            return {"event": f"{event.code:02X}", "meaning": event.meaning, "sender": event.sender,
                    "side": event.side, "param": event.param}
        if isinstance(event, PanDescriptor):
            return {"pan": {"channel": event.channel, "channel_page": event.channel_page,
                            "pan_id": f"{event.pan_id:04X}", "address": event.address, "lqi": event.lqi,
                            "side": event.side, "pair_id": event.pair_id}}
        if isinstance(event, Garbage):
            return {"error": f"cannot decode: {event.reason}"}
        return {"line": type(event).__name__.lower(), "text": text}

    def _frame(self, data: bytes) -> dict[str, Any]:
        try:
            return frame_json(decode_frame(data), self.kwh_per_step)
        except EchonetError as exc:
            return {"error": str(exc)}


def _lines(stream: TextIO) -> Iterator[str]:
    yield from stream


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="pms echonet decode", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("file", nargs="?", help="log file (default: stdin)")
    p.add_argument("--coefficient", type=int, help="D3, to print kWh next to raw registers (needs --unit)")
    p.add_argument("--unit", type=float, help="E1 multiplier in kWh, e.g. 0.1")
    args = p.parse_args(argv)
    if (args.coefficient is None) != (args.unit is None):
        p.error("--coefficient and --unit go together")
    kwh = None if args.unit is None else args.coefficient * args.unit
    decoder = LineDecoder(kwh)
    stream: TextIO = open(args.file, encoding="utf-8", errors="replace") if args.file else sys.stdin  # noqa: SIM115
    try:
        for line in _lines(stream):
            try:
                result = decoder.decode(line)
            except Exception as exc:
                result = {"error": f"internal error: {exc}"}
            sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    finally:
        if args.file:
            stream.close()
    return 0
