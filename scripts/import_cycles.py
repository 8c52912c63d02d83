"""Lists every import circle between two or more files of the project (tests excluded); exit 1 if any.

    .venv/bin/python scripts/import_cycles.py

The import graph is grimp's (the graph import-linter checks its contracts on), over every package
the project installs, imports under `if TYPE_CHECKING:` included: a circle hidden from the
interpreter is still a circle for a reader. A circle is a strongly connected component of the
graph of modules (one module = one file); each is printed with one path around it.
"""

from __future__ import annotations

import sys

import grimp

PACKAGES = (
    "pms", "echonet", "pms_common", "pms_store", "pms_registry", "pms_pv", "pms_plant", "pms_collector", "pms_ingest",
    "pms_alerts", "pms_weather", "pms_device_manager", "pms_api",
)


def strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph has a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph.modules:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def main() -> int:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    circles = strongly_connected(graph)
    for circle in circles:
        first, second = circle[0], circle[1]
        there = graph.find_shortest_chain(importer=first, imported=second) or ()
        back = graph.find_shortest_chain(importer=second, imported=first) or ()
        print(f"import circle of {len(circle)} modules: {', '.join(circle)}")
        print(f"  e.g. {' -> '.join(there)} -> {' -> '.join(back[1:])}")
    print(f"{len(graph.modules)} modules in {len(PACKAGES)} packages, {len(circles)} import circles")
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
