from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr

from pms_common.settings import RegistrySettings


class DeviceManagerSettings(RegistrySettings):
    default_metrics_port: ClassVar[int] = 9105

    missed_heartbeats: int = Field(default=3, ge=1)
    tick_s: float = Field(default=5.0, gt=0)
    control_poll_s: float = Field(default=1.0, gt=0, description="look for new desired configs and queued commands "
                                                                 "in the registry this often")
    fleet_count_s: float = Field(default=15.0, gt=0, description="count the registry's gateways by condition this "
                                                                  "often (the pms_device_manager_gateways gauge)")
    command_answer_grace_s: float = Field(default=2.0, ge=0, description="a sent command expires this long after "
                                                                         "its deadline without an answer")
    # ---- zero-config provisioning (docs/provisioning.md); off while broker_admin_url is unset ----
    broker_admin_url: str | None = Field(
        default=None, description="mqtt://user:pass@host:1883 of the broker's dynamic-security admin login; "
                                  "unset: no provisioning (claims are not answered)")
    provisioning_username: str = Field(default="pms-provisioning",
                                       description="the shared login gateways claim with (made at start)")
    provisioning_password: SecretStr | None = Field(default=None, description="its password")
    gateway_mqtt_url: str | None = Field(
        default=None, description="the broker URL handed to claimed gateways (no login in it); unset: the one "
                                  "they claimed on")
    claim_rate_per_serial_s: float = Field(default=0.1, gt=0, description="claims a second one serial may make")
    claim_burst_per_serial: float = Field(default=3, ge=1)
    claim_rate_total_s: float = Field(default=200.0, gt=0, description="claims a second of the whole fleet")
    claim_burst_total: float = Field(default=500, ge=1)
    revocation_poll_s: float = Field(default=0.5, gt=0, description="how often pending revocations are looked for")
    # ---- rollouts of update images (docs/software-update.md "Rollouts") ----
    api_public_url: str = Field(default="http://localhost:8080",
                                description="the API's URL as gateways reach it: update jobs point at "
                                            "{api_public_url}/api/v1/firmware/{sha256}/image")
    rollout_poll_s: float = Field(default=1.0, gt=0, description="plan every rollout under way this often")
