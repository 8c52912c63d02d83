"""ECHONET Lite and the B-route, sans-IO: bytes and lines in, typed events out; I/O lives in adapters."""

from echonet.errors import EchonetError, FrameError
from echonet.frame import EOJ, ESV, Frame, Property, decode_frame, encode_frame

__all__ = ["EOJ", "ESV", "EchonetError", "Frame", "FrameError", "Property", "decode_frame", "encode_frame"]
