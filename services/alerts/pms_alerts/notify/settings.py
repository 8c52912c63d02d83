"""Settings of notification delivery: a mixin the alerts service's settings inherit (env `PMS_...`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pms_alerts.notify.backoff import RetryPolicy
from pms_common.settings import ServiceSettings


class NotifySettings(ServiceSettings):
    smtp_url: str | None = Field(
        default=None,
        description="smtp://user:pass@host:587 (STARTTLS, on unless ?starttls=off) or smtp+ssl://user:pass@host:465 "
                    "(implicit TLS); unset: e-mail deliveries fail (and retry) saying so")
    smtp_ca_file: str | None = Field(default=None, description="CA bundle the SMTP server's certificate must chain "
                                                               "to (tests: their self-signed certificate)")
    smtp_timeout_s: float = Field(default=20.0, gt=0)
    mail_from: str = Field(default="pms@localhost", description="From: of notification mails")
    console_url: str = Field(default="http://127.0.0.1:8000", description="links in mails: {console_url}/plants/{code}")
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    notify_poll_s: float = Field(default=1.0, gt=0, description="how often the journal and due deliveries are read")
    notify_batch: int = Field(default=50, ge=1, description="deliveries sent per pass at most")
    retry_base_s: float = Field(default=10.0, gt=0, description="delay after a delivery's first failure")
    retry_cap_s: float = Field(default=600.0, gt=0, description="longest delay between two attempts")
    retry_max_age_s: float = Field(default=86_400.0, gt=0, description="a delivery still failing this long "
                                                                      "after it was made is dead-lettered")
    retry_jitter: Literal["full", "equal"] = "equal"

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(base_s=self.retry_base_s, cap_s=max(self.retry_cap_s, self.retry_base_s),
                           max_age_s=self.retry_max_age_s, jitter=self.retry_jitter)
