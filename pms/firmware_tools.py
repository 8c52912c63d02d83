"""`pms firmware keygen|sign|build`: make a signing key, build a collector image, sign it.

    pms firmware keygen OUT_DIR                 signing.key (PEM, mode 0600) and signing.pub ("ed25519:...")
    pms firmware build --version V [--source REPO] OUT_DIR   OUT_DIR/pms_collector-V-py3-none-any.whl
    pms firmware sign KEY IMAGE [--version V] [--min-version V]   IMAGE.manifest.json beside IMAGE

The image is a wheel named `pms-collector` holding pms_collector, pms_common and echonet, requiring
only the gateway's dependencies (the repository's core `dependencies`), with the console scripts
`pms-collector` and `pms-collector-boot`. It is built by setuptools from a pyproject generated in a
temporary directory, so it is an ordinary wheel pip installs into a slot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from pms_common import firmware

# Where each package of the image lives in the repository.
IMAGE_PACKAGES = {"pms_collector": "services/collector", "pms_common": "libs", "echonet": "libs"}
KEY_FILE = "signing.key"
PUBLIC_FILE = "signing.pub"


class FirmwareToolError(Exception):
    """A firmware command cannot do what was asked; the message says why."""


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def keygen(out_dir: Path) -> tuple[Path, str]:
    """Write a new signing key (refusing to overwrite one) and return its path and public key text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path = out_dir / KEY_FILE
    if key_path.exists():
        raise FirmwareToolError(f"{key_path} exists; a signing key is never overwritten")
    pem = firmware.generate_private_key_pem()
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = firmware.public_key_text(firmware.load_private_key(pem).public_key())
    (out_dir / PUBLIC_FILE).write_text(public + "\n")
    return key_path, public


def manifest_path(image: Path) -> Path:
    return image.with_name(image.name + ".manifest.json")


def sign(key: Path, image: Path, *, version: str | None = None, min_version: str | None = None) -> Path:
    """Sign `image` with the PEM key at `key`; the version defaults to the one in the wheel's name."""
    if version is None:
        parts = image.name.split("-")
        if len(parts) < 5 or not image.name.endswith(".whl"):
            raise FirmwareToolError(f"cannot tell the version from {image.name}; give --version")
        version = parts[1]
    try:
        private = firmware.load_private_key(key.read_bytes())
    except ValueError as exc:
        raise FirmwareToolError(f"{key}: {exc}") from None
    manifest = firmware.sign_image(private, image, version, min_version=min_version)
    out = manifest_path(image)
    out.write_bytes(manifest.to_json())
    return out


def _pyproject(version: str, dependencies: list[str]) -> str:
    deps = ",\n".join(f"    {dep!r}".replace("'", '"') for dep in dependencies)
    return f"""[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{firmware.IMAGE_NAME}"
version = "{version}"
description = "PMS gateway software: the collector and its update launcher"
requires-python = ">=3.11"
dependencies = [
{deps}
]

[project.scripts]
pms-collector = "pms_collector.main:main"
pms-collector-boot = "pms_collector.boot:main"

[tool.setuptools.packages.find]
where = ["."]
include = ["pms_collector", "pms_collector.*", "pms_common", "pms_common.*", "echonet", "echonet.*"]
"""


def build(version: str, out_dir: Path, *, source: Path | None = None) -> Path:
    """Build the collector wheel of version `version` from the repository at `source` (default: this one)."""
    source = source or repo_root()
    try:
        project = tomllib.loads((source / "pyproject.toml").read_text())
        dependencies = list(project["project"]["dependencies"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise FirmwareToolError(f"{source} is not a PMS repository (pyproject.toml: {exc})") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pms-image-") as temp:
        tree = Path(temp)
        for package, parent in IMAGE_PACKAGES.items():
            shutil.copytree(source / parent / package, tree / package,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (tree / "pyproject.toml").write_text(_pyproject(version, dependencies))
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                               "--disable-pip-version-check", "--quiet", "-w", str(out_dir), str(tree)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise FirmwareToolError(f"building the wheel failed: {done.stderr.strip()[-2000:]}")
    wheel = out_dir / f"pms_collector-{version}-py3-none-any.whl"
    if not wheel.exists():
        raise FirmwareToolError(f"the build made no {wheel.name} in {out_dir}")
    return wheel


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tool = commands.add_parser("firmware", help="gateway software images: keygen, build, sign")
    tools = tool.add_subparsers(dest="firmware_command", required=True, metavar="TOOL")
    keygen_p = tools.add_parser("keygen", help="make an Ed25519 signing key")
    keygen_p.add_argument("out_dir", type=Path)
    build_p = tools.add_parser("build", help="build the collector image (a wheel)")
    build_p.add_argument("--version", required=True)
    build_p.add_argument("--source", type=Path, help="the repository to build from (default: this one)")
    build_p.add_argument("out_dir", type=Path)
    sign_p = tools.add_parser("sign", help="sign an image: writes IMAGE.manifest.json")
    sign_p.add_argument("key", type=Path)
    sign_p.add_argument("image", type=Path)
    sign_p.add_argument("--version")
    sign_p.add_argument("--min-version")


def run(args: argparse.Namespace) -> int:
    try:
        if args.firmware_command == "keygen":
            key_path, public = keygen(args.out_dir)
            print(f"signing key: {key_path} (keep it secret)\npublic key (PMS_FIRMWARE_KEYS on gateways): {public}")
        elif args.firmware_command == "build":
            print(build(args.version, args.out_dir, source=args.source))
        else:
            print(sign(args.key, args.image, version=args.version, min_version=args.min_version))
    except (FirmwareToolError, firmware.FirmwareRefused, OSError) as exc:
        print(f"pms firmware {args.firmware_command}: {exc}", file=sys.stderr)
        return 2
    return 0
