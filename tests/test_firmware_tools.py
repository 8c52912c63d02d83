"""`pms firmware keygen|sign`: keys that are never overwritten, manifests a gateway verifies.

`pms firmware build` (a real wheel) is exercised by tests/collector/test_software_update.py, which
installs what it builds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pms.cli import main
from pms_common import firmware


def test_keygen_then_sign_gives_a_manifest_the_public_key_verifies(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "keygen", str(tmp_path / "keys")]) == 0
    public = (tmp_path / "keys" / "signing.pub").read_text().strip()
    assert public in capsys.readouterr().out
    assert (tmp_path / "keys" / "signing.key").stat().st_mode & 0o777 == 0o600
    image = tmp_path / "pms_collector-1.2.0-py3-none-any.whl"
    image.write_bytes(b"PK not really a wheel")
    assert main(["firmware", "sign", str(tmp_path / "keys" / "signing.key"), str(image), "--min-version", "1.0"]) == 0
    manifest = firmware.parse_manifest((tmp_path / f"{image.name}.manifest.json").read_bytes())
    assert (manifest.version, manifest.min_version, manifest.size) == ("1.2.0", "1.0", image.stat().st_size)
    firmware.verify_manifest(manifest, firmware.trusted_keys([public]))
    firmware.verify_image(manifest, image)


def test_keygen_never_overwrites_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "keygen", str(tmp_path)]) == 0
    key = (tmp_path / "signing.key").read_bytes()
    assert main(["firmware", "keygen", str(tmp_path)]) == 2
    assert "a signing key is never overwritten" in capsys.readouterr().err
    assert (tmp_path / "signing.key").read_bytes() == key


def test_sign_needs_a_version_it_can_tell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["firmware", "keygen", str(tmp_path)])
    image = tmp_path / "image.bin"
    image.write_bytes(b"x")
    assert main(["firmware", "sign", str(tmp_path / "signing.key"), str(image)]) == 2
    assert "give --version" in capsys.readouterr().err
