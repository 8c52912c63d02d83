"""Update images on disk, by digest: `<firmware_dir>/<sha256>.whl`.

An upload is copied into a temporary file in the same directory while it is hashed and counted, and
only a checked image is moved to its name by `os.replace` (atomic on one file system): a reader never
sees half an image, a crash leaves at most a temporary file, and an image already there is not
written twice. The registry's `firmware_images` table holds the manifests; this holds the bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

_CHUNK = 1 << 16
_TEMP_PREFIX = ".upload-"


class ImageTooLarge(Exception):
    """The upload is longer than it may be; what was read of it is thrown away."""


@dataclass(frozen=True)
class ReceivedImage:
    """An upload in a temporary file of the store's directory, with its digest and size."""

    path: Path
    sha256: str
    size: int


class FirmwareStore:
    def __init__(self, directory: Path) -> None:
        # Absolute now, against the working directory the setting was given in: Flask's send_file
        # reads a relative path against the package's folder, not the process's.
        self.directory = directory.resolve()

    def path_of(self, sha256: str) -> Path:
        return self.directory / f"{sha256}.whl"

    def has(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()

    def receive(self, stream: IO[bytes], limit: int) -> ReceivedImage:
        """Copy `stream` into a temporary file while hashing it; ImageTooLarge as soon as it passes
        `limit` bytes (the rest is not read)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".whl", dir=self.directory)
        path = Path(name)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise ImageTooLarge(f"the image is larger than {limit} bytes")
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return ReceivedImage(path=path, sha256=digest.hexdigest(), size=size)

    def keep(self, received: ReceivedImage) -> Path:
        """Move a checked upload to its digest's name; an image already stored stays as it is (the
        upload is dropped: same digest, same bytes)."""
        target = self.path_of(received.sha256)
        if self.has(received.sha256):
            self.discard(received)
        else:
            os.replace(received.path, target)
        return target

    def discard(self, received: ReceivedImage) -> None:
        with contextlib.suppress(FileNotFoundError):
            received.path.unlink()
