"""`pms registry migrate|wait`: the registry's schema upgrade as a step of its own.

    pms registry migrate                  upgrade PMS_REGISTRY_URL to this PMS's schema; prints the version
    pms registry wait [--timeout S]       wait until the registry is reachable and at this PMS's schema

Where many replicas start at once (Kubernetes), the upgrade runs once as a Job (`migrate`), the
services run with PMS_REGISTRY_MIGRATE=false and an init container that `wait`s, so no pod upgrades
the schema under the feet of pods of the previous release, and a failed upgrade is one Job's log.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from pms_common.settings import RegistrySettings

# pms_registry (SQLAlchemy, the server extra) is imported where it is used: `pms --help` builds this
# command's parser on a gateway too, which has no server extra.


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    registry = commands.add_parser("registry", help="the registry's schema: migrate it, or wait until it is migrated")
    actions = registry.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    actions.add_parser("migrate", help="upgrade PMS_REGISTRY_URL to this PMS's schema and print its version")
    wait = actions.add_parser("wait", help="exit 0 once PMS_REGISTRY_URL is reachable and at this PMS's schema")
    wait.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds (default 300)")
    wait.add_argument("--interval", type=float, default=2.0, help="seconds between looks (default 2)")


def migrate(url: str) -> tuple[int, int]:
    """Upgrade the registry at `url`; returns (the version found, the version now)."""
    from pms_registry.core import RegistryCore

    core = RegistryCore(url)
    try:
        found = core.schema_version()
        core.migrate()
        return found, core.schema_version()
    finally:
        core.close()


def wait(url: str, *, timeout_s: float, interval_s: float,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> tuple[bool, str]:
    """Look at the registry until its schema is this PMS's; returns (ready, what was seen last)."""
    from pms_registry.core import RegistryCore
    from pms_registry.errors import RegistryError
    from pms_registry.schema import SCHEMA_VERSION

    deadline = clock() + timeout_s
    core = RegistryCore(url)
    try:
        while True:
            try:
                version = core.schema_version()
            except RegistryError as exc:
                seen = f"the registry is not reachable: {exc}"
            else:
                if version == SCHEMA_VERSION:
                    return True, f"registry schema version {version}"
                if version > SCHEMA_VERSION:
                    # Waiting cannot help: a newer release migrated it.
                    return False, (f"the registry's schema is version {version}, newer than this PMS understands "
                                   f"({SCHEMA_VERSION})")
                seen = f"the registry's schema is version {version}, this PMS needs {SCHEMA_VERSION}"
            if clock() + interval_s > deadline:
                return False, seen
            sleep(interval_s)
    finally:
        core.close()


def run(args: argparse.Namespace) -> int:
    url = RegistrySettings().registry_url
    if args.registry_command == "migrate":
        found, now = migrate(url)
        change = "unchanged" if found == now else f"was {found}" if found else "new registry"
        print(f"registry schema version {now} ({change})")
        return 0
    ready, seen = wait(url, timeout_s=args.timeout, interval_s=args.interval)
    print(seen if ready else f"pms registry wait: {seen}", file=sys.stdout if ready else sys.stderr)
    return 0 if ready else 1
