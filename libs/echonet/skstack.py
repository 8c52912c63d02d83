"""SKSTACK IP module output parser, sans-IO: bytes in (any split), typed events out.

    parser = SkstackParser()
    parser.receive_data(chunk)
    while (event := parser.next_event()) is not NEED_DATA: ...

Lines end with CRLF, but three things break a plain line splitter and all occur on real modules:
- ERXUDP in binary mode (ROPT → OK 00) carries DATALEN raw bytes that may contain CR/LF: the record
  is split by its length field, never by CRLF.
- The echo of SKSENDTO repeats the command's binary data, again split by its length field.
- Echoes and noise glue to the next reply without a line break (`SKSENDTO ...ERXUDP ...`): a known
  reply keyword inside a line starts a new record there.
The parser never raises on peer input: what it cannot read becomes `Garbage`, and it resynchronises
at the next line break or keyword. Both families are read by field shape (a side is one digit, a
length is four hex digits), so the parser needs no family setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from echonet.skstack_events import (
    Echo,
    Fail,
    Garbage,
    Info,
    ModuleEvent,
    ModuleOutput,
    Ok,
    PanDescriptor,
    PayloadMode,
    RegisterValue,
    RxUdp,
    Text,
    Version,
)


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()

MAX_UDP_PAYLOAD = 1232  # the modules' UDP payload limit: a larger DATALEN is a corrupt header
_REPLY_KEYWORDS = (b"ERXUDP ", b"EVENT ", b"EPANDESC", b"FAIL ER", b"EVER ", b"EINFO ", b"ESREG ", b"OK\r")
_ECHO_PREFIXES = (b"SK", b"ROPT", b"WOPT", b"WUART", b"RUART")
_HEX = frozenset(b"0123456789ABCDEFabcdef")
_IPV6 = re.compile(r"^[0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{0,4}){2,7}$")
# Reads header tokens: the data length once known, None to read another token, -1 for malformed.
_HeaderReader = Callable[[list[bytes]], int | None]
_PAN_FIELDS = {"Channel", "Channel Page", "Pan ID", "Addr", "LQI", "Side", "PairID"}


def _is_hex(token: bytes) -> bool:
    return bool(token) and all(c in _HEX for c in token)


class SkstackParser:
    def __init__(self, payload_mode: PayloadMode = PayloadMode.AUTO, max_line: int = 4096) -> None:
        self.payload_mode = payload_mode
        self.max_line = max_line
        self._buffer = bytearray()
        self._pan: dict[str, str] | None = None  # fields of an EPANDESC being collected

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def events(self) -> list[ModuleOutput]:
        """Every event the buffered bytes complete."""
        out: list[ModuleOutput] = []
        while True:
            event = self.next_event()
            if isinstance(event, _NeedData):
                return out
            out.append(event)

    def feed(self, data: bytes) -> list[ModuleOutput]:
        self.receive_data(data)
        return self.events()

    # ---- the record splitter ------------------------------------------------------------------
    def next_event(self) -> ModuleOutput | _NeedData:
        buf = self._buffer
        while True:
            # Blank lines (a bare CRLF after a binary record, or between replies) carry nothing.
            start = 0
            while start < len(buf) and buf[start] in b"\r\n":
                start += 1
            if start:
                del buf[:start]
            if not buf:
                return NEED_DATA
            if self._pan is not None and buf[:1] != b" " and len(buf) >= 1:
                return self._finish_pan()
            if buf.startswith(b"ERXUDP "):
                record = self._binary_aware(_erxudp_header, MAX_UDP_PAYLOAD)
            elif buf.startswith(b"SKSENDTO "):
                record = self._binary_aware(_sksendto_header, MAX_UDP_PAYLOAD)
            else:
                record = None
            if record is not None:
                return record
            newline = buf.find(b"\n")
            line_end = newline if newline >= 0 else len(buf)
            # A reply glued behind an echo or noise starts a record of its own.
            glue = self._glued_keyword(bytes(buf[: line_end + 1]))
            if glue > 0:
                prefix = bytes(buf[:glue])
                del buf[:glue]
                return self._unglued(prefix)
            if newline < 0:
                if len(buf) > self.max_line:
                    junk = bytes(buf)
                    buf.clear()
                    return Garbage(junk, f"no line break within {self.max_line} bytes")
                return NEED_DATA
            raw = bytes(buf[:newline]).rstrip(b"\r")
            del buf[: newline + 1]
            event = self._line(raw)
            if event is not None:
                return event

    @staticmethod
    def _glued_keyword(line: bytes) -> int:
        best = -1
        for keyword in _REPLY_KEYWORDS:
            pos = line.find(keyword, 1)
            if pos > 0 and (best < 0 or pos < best):
                best = pos
        return best

    @staticmethod
    def _unglued(prefix: bytes) -> ModuleOutput:
        if prefix.startswith(_ECHO_PREFIXES):
            return Echo(prefix.decode("ascii", "replace").rstrip())
        return Garbage(prefix, "noise before a reply")

    # ---- length-framed records (binary ERXUDP, SKSENDTO echo) ---------------------------------
    def _binary_aware(self, header: _HeaderReader, limit: int) -> ModuleOutput | _NeedData | None:
        """Parse a record whose data is split by its length field; None: not such a record after all."""
        buf = self._buffer
        newline = buf.find(b"\n")
        tokens: list[bytes] = []
        pos = 0
        # Read space-separated header tokens until the reader knows the data length.
        while True:
            space = buf.find(b" ", pos)
            if space < 0 or (0 <= newline < space):
                if newline >= 0 or len(buf) > 256:
                    return None  # the header ended without data: a malformed line, read as a line
                return NEED_DATA
            tokens.append(bytes(buf[pos:space]))
            pos = space + 1
            verdict = header(tokens)
            if verdict is None:
                continue
            if verdict < 0 or verdict > limit:
                return None
            return self._take_data(tokens, pos, verdict)

    def _take_data(self, tokens: list[bytes], pos: int, length: int) -> ModuleOutput | _NeedData | None:
        buf = self._buffer
        binary = tokens[0] == b"SKSENDTO" or self.payload_mode is PayloadMode.BINARY
        if not binary and self.payload_mode is PayloadMode.AUTO:
            decided = self._looks_binary(pos, length)
            if decided is None:
                return NEED_DATA
            binary = decided
        if binary:
            if len(buf) < pos + length:
                return NEED_DATA
            data = bytes(buf[pos : pos + length])
            del buf[: pos + length]
        else:
            newline = buf.find(b"\n", pos)
            if newline < 0:
                return NEED_DATA if len(buf) - pos <= 2 * length + 2 else None
            text = bytes(buf[pos:newline]).rstrip(b"\r")
            if len(text) != 2 * length or not (_is_hex(text) or length == 0):
                return None
            data = bytes.fromhex(text.decode("ascii"))
            del buf[: newline + 1]
        return self._record(tokens, data)

    def _looks_binary(self, pos: int, length: int) -> bool | None:
        """AUTO mode: hex data is 2×DATALEN hex digits then CRLF; anything else is raw bytes."""
        avail = bytes(self._buffer[pos : pos + 2 * length + 1])
        for index, byte in enumerate(avail):
            if index == 2 * length:
                return byte not in b"\r\n"
            if byte not in _HEX:
                return True
        return None  # all hex so far: wait for the rest

    def _record(self, tokens: list[bytes], data: bytes) -> ModuleOutput:
        text = [t.decode("ascii", "replace") for t in tokens]
        if text[0] == "SKSENDTO":
            return Echo(" ".join(text) + " " + data.hex().upper())
        try:
            if len(text) == 8:  # single-hop: ERXUDP SENDER DEST RPORT LPORT LLA SECURED LEN
                side = rssi = None
                secured = text[6]
            elif len(text) == 9:  # dual-stack: ... LLA SECURED SIDE LEN
                rssi, secured, side = None, text[6], int(text[7])
            else:  # dual-stack with SKSREG SA2 1: ... LLA RSSI SECURED SIDE LEN
                rssi, secured, side = _rssi(text[6]), text[7], int(text[8])
            return RxUdp(
                sender=text[1], dest=text[2], rport=int(text[3], 16), lport=int(text[4], 16),
                sender_lla=text[5], secured=int(secured, 16), data=data, side=side, rssi=rssi,
            )
        except ValueError:
            return Garbage(b" ".join(tokens) + b" " + data, "malformed ERXUDP fields")

    # ---- single lines -------------------------------------------------------------------------
    def _line(self, raw: bytes) -> ModuleOutput | None:
        if self._pan is not None and raw.startswith(b" "):
            return self._pan_field(raw)
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            return Garbage(raw, "non-ASCII bytes in a text line")
        if not line.isprintable():
            return Garbage(raw, "control characters in a text line")
        head, _, rest = line.partition(" ")
        parse = _LINE_PARSERS.get(head)
        if parse is not None:
            try:
                return parse(self, line, rest)
            except (ValueError, IndexError):
                return Garbage(raw, f"malformed {head} line")
        if raw.startswith(_ECHO_PREFIXES):
            return Echo(line)
        if _IPV6.match(line) or head in {"EADDR", "ENEIGHBOR", "EPORT", "EHANDLE", "EAPPVER"}:
            return Text(line)
        return Garbage(raw, "not a line a module prints")

    def _ok(self, line: str, rest: str) -> ModuleOutput:
        if rest and (len(rest) > 8 or not rest.isalnum()):
            raise ValueError(line)
        return Ok(rest or None)

    def _fail(self, line: str, rest: str) -> ModuleOutput:
        if not re.fullmatch(r"ER\d\d", rest):
            raise ValueError(line)
        return Fail(rest)

    def _event(self, line: str, rest: str) -> ModuleOutput:
        fields = rest.split(" ")
        if len(fields) < 2 or len(fields) > 4 or len(fields[0]) != 2:
            raise ValueError(line)
        code = int(fields[0], 16)
        extra = fields[2:]
        side = None
        # Dual-stack modules print a one-digit side before the parameter; a parameter is 2+ digits.
        if extra and len(extra[0]) == 1:
            side = int(extra.pop(0))
        if len(extra) > 1:
            raise ValueError(line)
        return ModuleEvent(code, fields[1], side, extra[0] if extra else None)

    def _epandesc(self, line: str, rest: str) -> ModuleOutput | None:
        if rest:
            raise ValueError(line)
        self._pan = {}
        return None

    def _pan_field(self, raw: bytes) -> ModuleOutput | None:
        assert self._pan is not None
        key, sep, value = raw.decode("ascii", "replace").strip().partition(":")
        if not sep or key not in _PAN_FIELDS:
            self._pan = None
            return Garbage(raw, "unknown EPANDESC field")
        self._pan[key] = value
        # PairID is the last field in both families: finish without waiting for the next line.
        return self._finish_pan() if key == "PairID" else None

    def _finish_pan(self) -> ModuleOutput:
        fields, self._pan = self._pan or {}, None
        try:
            return PanDescriptor(
                channel=int(fields["Channel"], 16), channel_page=int(fields["Channel Page"], 16),
                pan_id=int(fields["Pan ID"], 16), address=fields["Addr"].upper(), lqi=int(fields["LQI"], 16),
                pair_id=fields.get("PairID"), side=int(fields["Side"]) if "Side" in fields else None,
            )
        except (KeyError, ValueError):
            return Garbage(repr(fields).encode(), "incomplete EPANDESC")

    def _version(self, line: str, rest: str) -> ModuleOutput:
        if not rest:
            raise ValueError(line)
        return Version(rest)

    def _info(self, line: str, rest: str) -> ModuleOutput:
        fields = rest.split(" ")
        if len(fields) not in (5, 6):
            raise ValueError(line)
        if len(fields) == 6:
            return Info(fields[0], fields[1], int(fields[2], 16), int(fields[3], 16), fields[4], int(fields[5]))
        # Five fields: single-hop modules end with ADDR16 (4 hex digits, FFFE unset); dual-stack
        # BP35C2-class modules end with the side (one digit) and print no ADDR16.
        if len(fields[4]) == 1:
            return Info(fields[0], fields[1], int(fields[2], 16), int(fields[3], 16), "", int(fields[4]))
        return Info(fields[0], fields[1], int(fields[2], 16), int(fields[3], 16), fields[4])

    def _register(self, line: str, rest: str) -> ModuleOutput:
        if not rest:
            raise ValueError(line)
        return RegisterValue(rest)

    def _malformed_erxudp(self, line: str, rest: str) -> ModuleOutput:
        raise ValueError(line)  # a well-formed ERXUDP was taken by the length-framed reader


def _rssi(token: str) -> int:
    """RSSI in dBm: printed as a signed decimal, or as a signed byte in hex by some firmware."""
    try:
        return int(token, 10)
    except ValueError:
        value = int(token, 16)
        return value - 256 if value >= 128 else value


def _erxudp_header(tokens: list[bytes]) -> int | None:
    """Data length once the ERXUDP header is complete; None: need more tokens; -1: malformed."""
    count = len(tokens)
    if count < 8:
        return None
    # Field 7 (index 6) is SECURED (one digit) on single-hop, SECURED or RSSI on dual-stack;
    # the length is the first 4-hex-digit token from there on.
    last = tokens[-1]
    if len(last) == 4 and _is_hex(last):
        return int(last, 16)
    if count >= 10 or len(last) > 4:
        return -1
    return None


def _sksendto_header(tokens: list[bytes]) -> int | None:
    """SKSENDTO HANDLE IP PORT SEC [SIDE] LEN: the length is the first 4-hex token after SEC."""
    count = len(tokens)
    if count < 6:
        return None
    last = tokens[-1]
    if len(last) == 4 and _is_hex(last):
        return int(last, 16)
    if count >= 7:
        return -1
    return None



_LINE_PARSERS = {
    "OK": SkstackParser._ok,
    "FAIL": SkstackParser._fail,
    "EVENT": SkstackParser._event,
    "EPANDESC": SkstackParser._epandesc,
    "EVER": SkstackParser._version,
    "EINFO": SkstackParser._info,
    "ESREG": SkstackParser._register,
    "ERXUDP": SkstackParser._malformed_erxudp,
}
