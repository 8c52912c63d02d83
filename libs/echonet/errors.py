"""The exception tree of `echonet`: every error the library raises on purpose, by whose fault it is.

    EchonetError                 anything this library raises on purpose
    ├── PeerError                the peer misbehaved: what it sent cannot be used
    │   ├── FrameError           bytes are not a valid ECHONET Lite format-1 frame
    │   └── PropertyError        a property's EDT does not fit its definition (size, range, form)
    ├── UsageError               the caller misused the API: fix the calling code, do not retry
    │   ├── ArgumentError        an argument is out of range or malformed (also a ValueError)
    │   └── StateError           a method was called in a state that does not allow it (also a RuntimeError)
    └── TransportError           the link to the peer failed: retrying may help, unless LinkFatal
        ├── LinkError            the serial port (or pseudo-terminal) cannot be opened, read or written
        ├── UdpError             a LAN socket cannot be opened or used
        ├── RequestError         one request got no usable answer: no reply in time, FAIL, session dropped
        │   └── LanTimeout       a LAN node did not answer a request within its timeout
        └── LinkFatal            the link cannot work as configured: a person has to fix something

Peer input that arrives as a stream is never raised: the SKSTACK parser turns unreadable module
output into `Garbage` events and the session counts frames it cannot decode. `PeerError` is what
the decoders raise when they are asked to read one frame or one EDT; `PropertyError` is also raised
when a value given to an encoder does not fit its property, the same check in the other direction.

`ArgumentError` and `StateError` also derive from the built-in `ValueError` and `RuntimeError`
that the library raised for these cases before it had its own classes, so callers that catch
those keep working. The adapters in `echonet.io` translate OS and pyserial errors into the
`TransportError` branch in one place (`echonet.io.translate`), with the original exception as the
cause.
"""


class EchonetError(Exception):
    """Base of every error this library raises on purpose."""


# ---- the peer misbehaved --------------------------------------------------------------------------
class PeerError(EchonetError):
    """What the peer sent cannot be used."""


class FrameError(PeerError):
    """Bytes received are not a valid ECHONET Lite format-1 frame."""


class PropertyError(PeerError):
    """A property value (EDT) does not fit the property's definition."""


# ---- the caller misused the API --------------------------------------------------------------------
class UsageError(EchonetError):
    """The calling code misused the API; retrying the same call cannot help."""


class ArgumentError(UsageError, ValueError):
    """An argument is out of range or malformed (a command field, a TID, an over-long EDT)."""


class StateError(UsageError, RuntimeError):
    """A method was called in a state that does not allow it (a request before the session is ready)."""


# ---- the link failed -------------------------------------------------------------------------------
class TransportError(EchonetError):
    """The link to the peer failed or gave up."""


class LinkError(TransportError):
    """The serial port (or pseudo-terminal) failed: unplugged dongle, missing device, I/O error."""


class UdpError(TransportError):
    """A LAN socket could not be opened or used: address in use, no such interface, no route."""


class RequestError(TransportError):
    """A request got no usable answer: timeout, FAIL from the module, or the session dropped."""


class LanTimeout(RequestError):
    """A node on the LAN did not answer a request within its timeout."""


class LinkFatal(TransportError):
    """The link cannot work as configured: retrying will not help, a person has to fix something."""
