"""The 0x0288 property table as Markdown, for docs/echonet.md (a test keeps the doc in step)."""

from __future__ import annotations

from echonet import smart_meter
from echonet.smart_meter import Access

# The access rules in the order and words of the doc's column.
_ACCESS_WORDS = (
    (Access.GET, "Get"),
    (Access.SET, "Set"),
    (Access.ANNOUNCE_ON_CHANGE, "INF on change"),
    (Access.ANNOUNCE_AT_SLOT_END, "INF at slot end"),
)


def access_text(access: Access) -> str:
    return ", ".join(words for rule, words in _ACCESS_WORDS if rule in access)


def render() -> str:
    lines = [
        "| EPC | name | kind | access | size (bytes) | signed | unit | no-data | meaning |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for epc, spec in sorted(smart_meter.PROPERTIES.items()):
        size = "variable" if spec.size is None else str(spec.size)
        no_data = "" if spec.no_data is None else f"0x{spec.no_data:X}"
        lines.append(f"| {epc:02X} | {spec.name} | {spec.kind} | {access_text(spec.access)} | {size} | "
                     f"{'yes' if spec.signed else 'no'} | {spec.unit or ''} | {no_data} | {spec.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
