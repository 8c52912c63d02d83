"""Write PMS's Grafana dashboards (pms_dashboards/, grafana-foundation-sdk) to dashboards/*.json.

    python deploy/grafana/generate.py          # rewrite the JSON files Grafana's file provisioning loads
    python deploy/grafana/generate.py --check  # exit 1 if a committed file differs from what the code makes

The JSON is committed because file provisioning reads files, not Python; a test checks that the
committed files are exactly what this script writes (tests/deploy/test_dashboards.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"


def rendered() -> dict[str, str]:
    """Each dashboard's file name and its JSON text, as committed."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    from pms_dashboards import dashboards

    return {
        name: json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, board in dashboards().items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    files = rendered()
    stale = sorted(
        name for name, text in files.items()
        if not (OUT / name).exists() or (OUT / name).read_text(encoding="utf-8") != text
    )
    extra = sorted(p.name for p in OUT.glob("*.json") if p.name not in files)
    if args.check:
        for name in stale + extra:
            print(f"{OUT / name} differs from generate.py's output", file=sys.stderr)
        return 1 if stale or extra else 0
    for name in stale:
        (OUT / name).write_text(files[name], encoding="utf-8")
        print(f"wrote {OUT / name}")
    for name in extra:
        (OUT / name).unlink()
        print(f"removed {OUT / name} (no dashboard makes it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
