"""The 0x0288 property table as Markdown, for docs/echonet.md (a test keeps the doc in step)."""

from __future__ import annotations

from echonet import smart_meter


def render() -> str:
    lines = [
        "| EPC | name | size (bytes) | signed | unit | no-data | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for epc, spec in sorted(smart_meter.PROPERTIES.items()):
        size = "variable" if spec.size is None else str(spec.size)
        no_data = "" if spec.no_data is None else f"0x{spec.no_data:X}"
        lines.append(f"| {epc:02X} | {spec.name} | {size} | {'yes' if spec.signed else 'no'} | "
                     f"{spec.unit or ''} | {no_data} | {spec.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
