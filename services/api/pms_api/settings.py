from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from pms_common.firmware import VersionText, parse_public_key
from pms_common.settings import RegistrySettings


class ApiSettings(RegistrySettings):
    default_metrics_port: ClassVar[int] = 8080

    tsdb_url: str = "sqlite:///var/pms-ts.db"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)
    admin_api_key: str | None = Field(default=None, description="registered as an admin key at start")
    admin_user: str = Field(default="admin", description="console admin login made at start")
    admin_password: str | None = Field(
        default=None, description="the console admin's password; unset = the admin API key (as `pms up` prints it)")
    console_secret_key: str | None = Field(
        default=None, description="signs console sessions; unset = a random key kept in the registry")
    console_secure_cookie: bool = Field(
        default=False, description="behind TLS: the console's session cookie is sent over HTTPS only")
    api_proxy_hops: int = Field(
        default=0, ge=0, le=5,
        description="reverse proxies in front of the API (an Ingress, a load balancer): the client's address "
                    "and scheme are taken from the last this many X-Forwarded-For/-Proto entries; 0 = no proxy, "
                    "the headers are ignored")
    login_max_failures: int = Field(default=5, ge=1, description="wrong console passwords per username in the window")
    login_window_s: float = Field(default=300.0, gt=0, description="the login-failure window, and the lockout")
    console_session_idle_s: float = Field(
        default=8 * 3600.0, gt=0, description="a console login ends after this long without a request")
    console_session_max_s: float = Field(
        default=7 * 86400.0, gt=0, description="a console login ends this long after the password was given")
    console_refresh_s: float = Field(default=20.0, gt=0, description="how often the sales list refreshes")
    not_measured_intervals: int = Field(default=3, ge=1, description="power intervals without a reading")
    api_threads: int = Field(default=8, ge=1)
    firmware_dir: Path = Field(default=Path("var/firmware"),
                               description="update images, stored by digest as <sha256>.whl")
    firmware_keys: list[str] = Field(
        default_factory=list, description="public keys an uploaded image's manifest must be signed by: "
                                          "'ed25519:<base64>' or PEM; two may be valid at once (rotation)")
    firmware_min_version: VersionText | None = Field(
        default=None, description="a floor: images of a lower version are refused at upload")

    @field_validator("firmware_keys")
    @classmethod
    def _keys_parse(cls, keys: list[str]) -> list[str]:
        for text in keys:  # a typo in a key is found at start, not at the first upload
            parse_public_key(text)
        return keys
