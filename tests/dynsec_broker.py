"""A real Mosquitto 2.0 with the dynamic-security plugin on a free port, for any test that needs one.

Set up as production is (deploy/mosquitto/mosquitto-dynsec.conf): the plugin holds the admin, the
service logins and the gateways; the password file holds only the shared provisioning login, which
`acl_file` (deploy/mosquitto/acl-provisioning) confines to `pms/v1/provision/{its client id}/#`.

    broker = DynsecBroker(); broker.start()
    broker.admin_address          # BrokerAddress of the dynsec admin (may also read every topic)
    broker.provisioning           # BrokerLogin of the provisioning login
    broker.url(login)             # mqtt://user:password@127.0.0.1:PORT
    broker.make_service_logins()  # ingest, alerts, ... with their production rights: broker.services
    broker.stop(); broker.start() # a restart keeps every login (the plugin saves its file)
    broker.remove()               # stop and delete its folder

`tests/conftest.py` has it as the fixture `dynsec_broker` (started, with the service logins made).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from pms_common.broker_admin import BrokerLogin
from pms_common.dynsec import SERVICE_ROLES, DynsecBrokerAdmin
from pms_common.mqtt import BrokerAddress

REPO = Path(__file__).resolve().parents[1]
PROVISIONING_ACL = REPO / "deploy" / "mosquitto" / "acl-provisioning"
PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
ADMIN_USERNAME = "admin"
PROVISIONING_USERNAME = "provision"


def _tool(name: str) -> str:
    found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                       None)
    if found is None:
        raise AssertionError(f"`{name}` is missing: install Debian's mosquitto and mosquitto-clients packages")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DynsecBroker:
    def __init__(self, port: int | None = None) -> None:
        if not PLUGIN.exists():
            raise AssertionError(f"{PLUGIN} is missing: install Debian's mosquitto package (2.0)")
        self.port = port or _free_port()
        # Not under pytest's tmp_path: run as root, the broker drops to the `mosquitto` user, which
        # cannot enter pytest's 0700 folders.
        self.dir = Path(tempfile.mkdtemp(prefix=f"pms-dynsec-{self.port}-"))
        self.dir.chmod(0o755)
        self.admin = BrokerLogin(username=ADMIN_USERNAME, password=secrets.token_urlsafe(16))
        self.provisioning = BrokerLogin(username=PROVISIONING_USERNAME, password=secrets.token_urlsafe(16))
        self.services: dict[str, BrokerLogin] = {}
        self.conf = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def admin_address(self) -> BrokerAddress:
        return self.address(self.admin)

    def address(self, login: BrokerLogin) -> BrokerAddress:
        return BrokerAddress(host="127.0.0.1", port=self.port, username=login.username, password=login.password)

    def url(self, login: BrokerLogin) -> str:
        return f"mqtt://{quote(login.username, safe='')}:{quote(login.password, safe='')}@127.0.0.1:{self.port}"

    def _write_config(self) -> None:
        dynsec_file = self.dir / "dynamic-security.json"
        subprocess.run([_tool("mosquitto_ctrl"), "dynsec", "init", str(dynsec_file), self.admin.username,
                        self.admin.password], check=True, capture_output=True)
        passwords = self.dir / "passwords"
        passwords.touch()
        subprocess.run([_tool("mosquitto_passwd"), "-b", str(passwords), self.provisioning.username,
                        self.provisioning.password], check=True, capture_output=True)
        acl = self.dir / "acl"
        shutil.copy(PROVISIONING_ACL, acl)
        self.conf.write_text(
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            "persistence false\n"
            f"listener {self.port} 127.0.0.1\n"
            f"password_file {passwords}\n"
            f"acl_file {acl}\n"
            f"plugin {PLUGIN}\n"
            f"plugin_opt_config_file {dynsec_file}\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )
        if os.geteuid() == 0:
            # Run as root, mosquitto drops to its own user, which must read the files and save the plugin's.
            user = pwd.getpwnam("mosquitto")
            for path in (self.dir, *self.dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([_tool("mosquitto"), "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"mosquitto (dynsec) exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto (dynsec) did not listen on {self.port}: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def make_service_logins(self) -> dict[str, BrokerLogin]:
        """The service logins of production (pms_common.dynsec.SERVICE_ROLES), each with a new password."""
        logins = {name: BrokerLogin(username=name, password=secrets.token_urlsafe(16)) for name in SERVICE_ROLES}

        async def make() -> None:
            admin = DynsecBrokerAdmin(self.admin_address)
            for login in logins.values():
                await admin.ensure_service_login(login.username, login.password)

        asyncio.run(make())
        self.services = logins
        return logins
