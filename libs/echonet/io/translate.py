"""Where OS and pyserial errors become the library's transport errors: one place, the cause chained.

Every adapter wraps its port and socket calls in `translate_errors`, so an application catches
`echonet.errors.TransportError` (or one of its classes) and never `OSError` or pyserial's
`SerialException`; the original exception stays reachable as `__cause__` for the logs.
pyserial's `SerialException` derives from `OSError` (`IOError`), so the default catches it
without importing pyserial here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from echonet.errors import TransportError

IO_ERRORS: tuple[type[Exception], ...] = (OSError,)


@contextlib.contextmanager
def translate_errors(error: type[TransportError], what: str, *, errors: tuple[type[Exception], ...] = IO_ERRORS,
                     detail: bool = True) -> Iterator[None]:
    """Raise `error(what: cause)` from any of `errors` raised in the block (`error(what)` without `detail`)."""
    try:
        yield
    except errors as exc:
        raise error(f"{what}: {exc}" if detail else what) from exc
