"""ECHONET Lite and the B-route, sans-IO: bytes and lines in, typed events out.

The names below are the public API of the core. The core never does I/O and imports nothing from
the packages beside it: `echonet.io` (serial ports, asyncio links, UDP sockets), `echonet.sim`
(the simulated meter, module and LAN node) and `echonet.tools` (the decoder and doc generator)
build on it.

    frame = decode_frame(data)                       # bytes -> Frame (FrameError if not one)
    value = smart_meter.decode_value(0xE7, edt)      # the 0x0288 property table
    parser = SkstackParser(); parser.feed(chunk)     # module output -> Ok, ModuleEvent, RxUdp, ...
    session = BRouteSession(SessionConfig(...))      # the B-route state machine; see echonet.session
    line = commands.skscan(Family.DUAL_STACK, 6)     # SKSTACK command builders
"""

from echonet import commands, lan, smart_meter
from echonet.errors import (
    ArgumentError,
    EchonetError,
    FrameError,
    LanTimeout,
    LinkError,
    LinkFatal,
    PeerError,
    PropertyError,
    RequestError,
    StateError,
    TransportError,
    UdpError,
    UsageError,
)
from echonet.frame import (
    CONTROLLER,
    EOJ,
    ESV,
    NODE_PROFILE,
    SMART_METER,
    Frame,
    Property,
    decode_frame,
    decode_frame_values,
    encode_frame,
)
from echonet.session import (
    BackoffCause,
    BRouteSession,
    ModuleDetected,
    Notification,
    PanCached,
    RequestFailed,
    Response,
    SessionConfig,
    SessionEvent,
    SessionState,
    StateChanged,
)
from echonet.skstack import NEED_DATA, SkstackParser
from echonet.skstack_events import (
    Echo,
    Fail,
    Family,
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

__all__ = [
    "CONTROLLER",
    "EOJ",
    "ESV",
    "NEED_DATA",
    "NODE_PROFILE",
    "SMART_METER",
    "ArgumentError",
    "BRouteSession",
    "BackoffCause",
    "Echo",
    "EchonetError",
    "Fail",
    "Family",
    "Frame",
    "FrameError",
    "Garbage",
    "Info",
    "LanTimeout",
    "LinkError",
    "LinkFatal",
    "ModuleDetected",
    "ModuleEvent",
    "ModuleOutput",
    "Notification",
    "Ok",
    "PanCached",
    "PanDescriptor",
    "PayloadMode",
    "PeerError",
    "Property",
    "PropertyError",
    "RegisterValue",
    "RequestError",
    "RequestFailed",
    "Response",
    "RxUdp",
    "SessionConfig",
    "SessionEvent",
    "SessionState",
    "SkstackParser",
    "StateChanged",
    "StateError",
    "Text",
    "TransportError",
    "UdpError",
    "UsageError",
    "Version",
    "commands",
    "decode_frame",
    "decode_frame_values",
    "encode_frame",
    "lan",
    "smart_meter",
]
