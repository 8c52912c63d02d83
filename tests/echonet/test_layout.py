"""The shape of the library: a core without I/O, one exception tree, OS errors translated in one place."""

from __future__ import annotations

import ast
import errno
import subprocess
import sys
from pathlib import Path

import pytest

import echonet
from echonet import errors
from echonet.io.translate import translate_errors

CORE = Path(echonet.__file__).parent
FORBIDDEN = ("asyncio", "socket", "serial", "selectors", "threading", "subprocess",
             "echonet.io", "echonet.sim", "echonet.tools")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_the_core_imports_no_io_and_nothing_beside_it(path: Path) -> None:
    bad = {name for name in _imports(path) if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_importing_the_core_loads_no_io() -> None:
    code = ("import sys, echonet; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('asyncio', 'socket', 'serial', 'selectors', 'threading', 'subprocess') "
            "or m.startswith(('echonet.io', 'echonet.sim', 'echonet.tools'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_public_name_is_there() -> None:
    assert all(hasattr(echonet, name) for name in echonet.__all__)


def test_usage_errors_are_the_builtins_they_replaced() -> None:
    assert issubclass(errors.ArgumentError, ValueError) and issubclass(errors.ArgumentError, errors.UsageError)
    assert issubclass(errors.StateError, RuntimeError) and issubclass(errors.StateError, errors.UsageError)
    for cls in (errors.LinkError, errors.UdpError, errors.RequestError, errors.LanTimeout, errors.LinkFatal):
        assert issubclass(cls, errors.TransportError)
    for cls in (errors.FrameError, errors.PropertyError):
        assert issubclass(cls, errors.PeerError)
    # A LinkFatal must not be retried by code that re-opens the port on LinkError.
    assert not issubclass(errors.LinkFatal, errors.LinkError)


def test_os_errors_become_transport_errors_with_the_cause() -> None:
    cause = OSError(errno.ENODEV, "No such device")
    with pytest.raises(errors.LinkError, match=r"^opening /dev/x: \[Errno 19\] No such device$") as raised:
        with translate_errors(errors.LinkError, "opening /dev/x"):
            raise cause
    assert raised.value.__cause__ is cause
    with pytest.raises(errors.UdpError, match=r"^no interface$"), translate_errors(errors.UdpError, "no interface",
                                                                                  detail=False):
        raise OSError("gone")
    with pytest.raises(KeyError), translate_errors(errors.LinkError, "not translated"):
        raise KeyError("a bug is not a link failure")
