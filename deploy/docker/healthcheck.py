#!/usr/bin/env python3
"""Container healthcheck for PMS services: exit 0 when GET /healthz answers 200.

    pms-healthcheck [PORT]

PORT defaults to $PMS_API_PORT for the API or $PMS_METRICS_PORT for the other services.
Standard library only: the slim image has no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    port = argv[1] if len(argv) > 1 else os.environ.get("PMS_METRICS_PORT") or os.environ.get("PMS_API_PORT")
    if not port:
        print("pms-healthcheck: no port (argument, PMS_METRICS_PORT or PMS_API_PORT)", file=sys.stderr)
        return 2
    url = f"http://127.0.0.1:{int(port)}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            ok = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"pms-healthcheck: {url}: {exc}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
