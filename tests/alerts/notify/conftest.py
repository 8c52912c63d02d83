"""A registry file, a scripted clock, a real SMTP server and a webhook receiver for the notifier tests."""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pms_alerts.notify.dispatcher import Dispatcher, PassReport
from pms_alerts.notify.settings import NotifySettings
from pms_common.timeutil import JST
from pms_registry import Registry
from pms_registry.records import AlertRecord, Channel, EventRecord
from tests.alerts.receivers import MailServer, WebhookReceiver

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)
SECRETS = ["whsec_current", "whsec_previous"]


@dataclass
class ScriptedClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def unix(self) -> float:
        return self.now.timestamp()


@dataclass
class Fleet:
    """A registry with one customer, its plants, a webhook channel and an e-mail channel."""

    registry: Registry
    clock: ScriptedClock
    webhook: WebhookReceiver
    mail: MailServer
    settings: NotifySettings
    webhook_channel: Channel
    mail_channel: Channel
    codes: list[str] = field(default_factory=list)
    alerts: dict[str, AlertRecord] = field(default_factory=dict)

    def add_plants(self, count: int) -> list[str]:
        start = len(self.codes)
        new = [self.registry.create_plant(customer_id="c1", name=f"発電所{start + i + 1}", address="札幌市",
                                          phone="011-000-0000", created_at=T0) for i in range(count)]
        self.codes.extend(new)
        return new

    def raise_offline(self, code: str) -> EventRecord:
        record = AlertRecord(alert_id=None, kind="gateway_offline", subject=code, service_code=code,
                             gateway_id=f"gw-{code}", rule_id=None, severity="critical", state="pending",
                             pending_since=self.clock.now)
        fired, event = self.registry.fire_alert(record, at=self.clock.now,
                                                message=f"gateway gw-{code} is offline (missed heartbeats)",
                                                params={"reason": "missed heartbeats"})
        self.alerts[code] = fired
        return event

    def clear_offline(self, code: str) -> EventRecord:
        _, event = self.registry.resolve_alert(self.alerts.pop(code), at=self.clock.now)
        assert event is not None
        return event

    def dispatcher(self, seed: int = 1) -> Dispatcher:
        return Dispatcher(self.settings, self.registry, self.clock, random.Random(seed))

    def run(self, dispatcher: Dispatcher, *, seconds: float, step_s: float = 10.0) -> list[PassReport]:
        """Passes every `step_s` of clock time for `seconds` (the first pass at the current time)."""
        reports = []
        end = self.clock.now + timedelta(seconds=seconds)
        while True:
            reports.append(asyncio.run(dispatcher.run_once()))
            if self.clock.now + timedelta(seconds=step_s) > end:
                return reports
            self.clock.advance(step_s)


@pytest.fixture
def clock() -> ScriptedClock:
    return ScriptedClock()


@pytest.fixture
def mail_server(tmp_path: Path) -> Iterator[MailServer]:
    server = MailServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def webhook(clock: ScriptedClock) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secrets=["whsec_previous"], clock=clock.unix).start()
    yield receiver
    receiver.stop()


def notify_settings(mail_server: MailServer, **overrides: Any) -> NotifySettings:
    values: dict[str, Any] = {
        "smtp_url": mail_server.url, "smtp_ca_file": mail_server.ca_file, "smtp_timeout_s": 5.0,
        "mail_from": "pms@example.jp", "console_url": "https://pms.example.jp", "webhook_timeout_s": 5.0,
        "retry_base_s": 10.0, "retry_cap_s": 600.0, "retry_max_age_s": 86_400.0, **overrides,
    }
    return NotifySettings(**values)


@pytest.fixture
def registry_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the registry file lives: in memory-backed /dev/shm where there is one (a real SQLite file
    still; the storm test writes 3,000 transactions, and a loaded CI disk's fsyncs took a minute)."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="pms-notify-") as directory:
        yield Path(directory)


@pytest.fixture
def fleet(registry_dir: Path, clock: ScriptedClock, webhook: WebhookReceiver, mail_server: MailServer) -> Iterator[Fleet]:
    registry = Registry(f"sqlite:///{registry_dir}/pms.db")
    registry.migrate()
    registry.ensure_customer("c1", "北斗エナジー")
    webhook_channel = registry.create_channel(kind="webhook", name="ops hook", customer_id="c1", language="en",
                                              min_severity="warning", at=T0,
                                              config={"url": webhook.url, "secrets": SECRETS},
                                              group_wait_s=30, group_interval_s=300)
    mail_channel = registry.create_channel(kind="email", name="ops mail", customer_id="c1", language="ja",
                                           min_severity="warning", at=T0,
                                           config={"to": ["ops@example.jp"]}, group_wait_s=30, group_interval_s=300)
    fleet = Fleet(registry=registry, clock=clock, webhook=webhook, mail=mail_server,
                  settings=notify_settings(mail_server), webhook_channel=webhook_channel, mail_channel=mail_channel)
    fleet.add_plants(3)
    yield fleet
    registry.close()
