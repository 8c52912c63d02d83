"""The version of the collector running here.

Installed from an update image (the `pms-collector` wheel), it is that wheel's version; run from
the repository (`pip install -e .`), the repository's (`pms`).
"""

from __future__ import annotations

from importlib import metadata

IMAGE_DIST = "pms-collector"
REPO_DIST = "pms"
UNKNOWN = "0.0.0"


def running_version() -> str:
    for dist in (IMAGE_DIST, REPO_DIST):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return UNKNOWN


def firmware_text() -> str:
    """What the heartbeat calls the firmware: `pms-collector/<version>`."""
    return f"{IMAGE_DIST}/{running_version()}"
