"""`scripts/rehearse` (python -m pms.rehearsal): start the production rehearsal, print what runs where,
stop everything on Ctrl-C (or SIGTERM). Exit 0 after a clean stop, 1 when the start failed."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from pms.rehearsal.processes import StartFailed
from pms.rehearsal.topology import Rehearsal, RehearsalOptions


def parse(argv: list[str] | None) -> RehearsalOptions:
    parser = argparse.ArgumentParser(prog="scripts/rehearse", description=__doc__)
    parser.add_argument("--gateways", type=int, default=2, help="claimed gateways on simulated meters (default 2)")
    parser.add_argument("--power-interval", type=float, default=5.0, metavar="S",
                        help="the gateways' power reading interval in seconds (default 5)")
    parser.add_argument("--scrape-interval", metavar="DURATION",
                        help="Prometheus scrape and rule evaluation interval (default: prometheus.yml's)")
    parser.add_argument("--alert-for", metavar="DURATION",
                        help="cut every alert's `for` longer than this to it (default: alerts.yml's)")
    parser.add_argument("--postgres", default=RehearsalOptions.postgres_admin_url, metavar="URL",
                        help="a PostgreSQL login that may create a role and a database (default %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (configs, logs, data)")
    args = parser.parse_args(argv)
    if args.gateways < 1:
        parser.error("--gateways must be at least 1")
    return RehearsalOptions(gateways=args.gateways, power_interval_s=args.power_interval,
                            scrape_interval=args.scrape_interval, alert_for_at_most=args.alert_for,
                            postgres_admin_url=args.postgres, keep_folder=args.keep)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    rehearsal = Rehearsal(options, announce=lambda line: print(line, flush=True))
    try:
        rehearsal.start()
    except StartFailed as exc:
        print(f"rehearse: the start failed, everything started was stopped: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("rehearse: interrupted while starting; everything started was stopped", flush=True)
        return 130
    try:
        print(rehearsal.summary(), flush=True)
        print("\nrunning; Ctrl-C stops everything", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print("rehearse: stopping", flush=True)
    finally:
        rehearsal.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
