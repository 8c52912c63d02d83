"""The architecture contracts in pyproject.toml keep up with the code they guard.

`make test` runs the contracts themselves (`lint-imports`, `scripts/import_cycles.py`); these tests
make sure a new module cannot slip past them unnoticed.
"""

from __future__ import annotations

import importlib.machinery
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ECHONET = ROOT / "libs" / "echonet"
ADAPTER_PACKAGES = {"io", "sim", "tools"}


def _contract(contract_id: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["id"] == contract_id)


def test_every_top_level_echonet_module_is_held_to_the_sans_io_contract() -> None:
    core = {"echonet"} | {f"echonet.{path.stem}" for path in ECHONET.glob("*.py") if path.stem != "__init__"}
    packages = {path.name for path in ECHONET.iterdir() if (path / "__init__.py").exists()}
    assert packages == ADAPTER_PACKAGES, "a new echonet subpackage needs a place in the core contract"
    assert set(_contract("echonet-core-sans-io")["source_modules"]) == core  # type: ignore[arg-type]


def test_every_package_the_project_installs_is_in_the_layers() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    layered = {name.strip() for layer in _contract("layers")["layers"] for name in str(layer).split("|")}  # type: ignore[attr-defined]
    assert layered == set(config["importlinter"]["root_packages"]) == set(config["mypy"]["packages"])


def test_the_cycle_finder_sees_a_circle(tmp_path: Path) -> None:
    """The command that proves "no import circle" must be able to fail."""
    package = tmp_path / "circle_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circle_probe import b\n")
    (package / "b.py").write_text("from circle_probe import a\n")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2]);"
        "import grimp, import_cycles;"
        "print(import_cycles.strongly_connected(grimp.build_graph('circle_probe', cache_dir=None)))"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path), str(ROOT / "scripts")],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[['circle_probe.a', 'circle_probe.b']]"


def test_tests_directory_does_not_shadow_the_echonet_library() -> None:
    """A regression: while tests/ had no __init__.py, pytest (import mode `prepend`) put `tests/` on
    sys.path and the empty `tests/echonet/` folder answered `import echonet` as an empty namespace
    package before the installed library was found. Every test folder is a package now
    (`tests.echonet`), so it can no longer shadow the library.
    """
    spec = importlib.machinery.PathFinder.find_spec("echonet", sys.path)
    found = None if spec is None else (spec.origin, list(spec.submodule_search_locations or []))
    assert spec is None or spec.origin is not None, f"sys.path resolves echonet to {found}"


# tests/<folder> mirrors the package it tests; three folders test the product as a whole.
PACKAGE_OF_TEST_FOLDER = {
    "echonet": "echonet", "common": "pms_common", "store": "pms_store", "registry": "pms_registry",
    "collector": "pms_collector", "ingest": "pms_ingest", "alerts": "pms_alerts", "weather": "pms_weather",
    "device_manager": "pms_device_manager", "api": "pms_api", "pms": "pms", "pv": "pms_pv",
}
WHOLE_PRODUCT_FOLDERS = {"integration", "browser", "deploy"}


def test_the_tests_follow_the_layout_rule_of_tests_readme() -> None:
    tests = ROOT / "tests"
    folders = {path.name for path in tests.iterdir() if path.is_dir() and not path.name.startswith((".", "__"))}
    assert folders <= set(PACKAGE_OF_TEST_FOLDER) | WHOLE_PRODUCT_FOLDERS, "see tests/README.md"
    for folder in folders:
        assert (tests / folder / "__init__.py").exists(), f"tests/{folder} must be a package (see above)"
