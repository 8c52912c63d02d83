"""The exception tree of `echonet`.

    EchonetError          anything this library raises on purpose
    ├── FrameError        bytes from the peer are not a valid ECHONET Lite frame (the peer misbehaved)
    └── PropertyError     a property's EDT does not fit its definition (size, range)
"""


class EchonetError(Exception):
    """Base of every error this library raises on purpose."""


class FrameError(EchonetError):
    """Bytes received are not a valid ECHONET Lite format-1 frame."""


class PropertyError(EchonetError):
    """A property value (EDT) does not fit the property's definition."""
