"""Issue 13, acceptance 2: the scripted week of acceptance 1 (tests/integration/alert_week.py), run
against the real `pms alerts` process (restarted mid-week) with its file clock, delivers exactly one
notification per event per channel: by e-mail through a real SMTP server (aiosmtpd with STARTTLS and
login, started here) and to a local webhook receiver that checks the HMAC with its own `hmac` lines
and refuses stale or replayed requests. The receiver answers 500 for an hour of the week's clock
(Wednesday 09:00-10:00, while P3 flaps); it gets those deliveries afterwards, once each."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from pms_registry import Registry
from tests.alerts.receivers import MailServer, WebhookReceiver
from tests.integration.alert_week import at
from tests.integration.test_alert_week import (  # week_run: the fixture, shared
    EXPECTED,
    GENERATION_EXPECTED,
    WeekRunner,
    week_run,  # noqa: F401
)

OUTAGE = (at(2, 9), at(2, 10))


def _file_clock(path: Path) -> float:
    """The receiver's own clock: the week's clock file, as the alerts process reads it."""
    try:
        return datetime.fromisoformat(path.read_text().strip()).timestamp()
    except (OSError, ValueError):
        return 0.0


@pytest.mark.slow
def test_the_week_notifies_once_per_event_per_channel(week_run: WeekRunner, tmp_path: Path) -> None:  # noqa: F811
    mail = MailServer(tmp_path).start()
    webhook = WebhookReceiver(secrets=["whsec_receiver"], clock=lambda: _file_clock(tmp_path / "clock"),
                              outage=(OUTAGE[0].timestamp(), OUTAGE[1].timestamp())).start()
    try:
        def channels(registry: Registry, codes: dict[str, str]) -> None:
            at_setup = at(0, 0)
            registry.create_channel(kind="webhook", name="operator hook", customer_id=None, language="en",
                                    min_severity="info", at=at_setup,
                                    config={"url": webhook.url, "secrets": ["whsec_new", "whsec_receiver"]})
            registry.create_channel(kind="email", name="operator mail", customer_id=None, language="ja",
                                    min_severity="info", at=at_setup, config={"to": ["ops@example.jp"]})

        run = week_run(setup=channels, extra_env={
            "PMS_SMTP_URL": mail.url, "PMS_SMTP_CA_FILE": mail.ca_file, "PMS_MAIL_FROM": "pms@example.jp",
            "PMS_CONSOLE_URL": "https://pms.example.jp", "PMS_NOTIFY_POLL_S": "0.05",
            "PMS_RETRY_BASE_S": "60", "PMS_RETRY_CAP_S": "600",
        })
        registry = Registry(run.registry_url)
        try:
            journal = registry.happenings_after(0, limit=100_000)
            deliveries = registry.list_deliveries(limit=10_000)
        finally:
            registry.close()
        happenings = sorted(h.happening_id for h in journal)
        # Every row of the week's expected event list is one happening (acceptance 1 checks which).
        assert len(happenings) == len(EXPECTED + GENERATION_EXPECTED)

        # Exactly one notification per event per channel, across the restart and the outage.
        by_webhook = sorted(webhook.accepted_happenings())
        assert by_webhook == happenings, Counter(by_webhook) - Counter(happenings)
        assert sorted(mail.received_happenings()) == happenings
        assert {d.state for d in deliveries} == {"delivered"}
        assert not [status for status, _ in webhook.rejected if status == 409]  # nothing was sent twice

        # The hour of 500s: the deliveries made then failed, and were delivered after it, once each.
        hooks = [d for d in deliveries if d.channel_kind == "webhook"]
        made_then = [d for d in hooks if OUTAGE[0] <= d.created_at < OUTAGE[1]]
        summary = [(d.created_at.isoformat(), d.attempts, d.delivered_at, d.last_error) for d in hooks]
        assert made_then, summary
        assert all(d.attempts > 1 and d.delivered_at is not None and d.delivered_at >= OUTAGE[1]
                   for d in made_then), summary
        told_then = [h["happening_id"] for d in made_then for h in d.body["happenings"]]
        assert len(told_then) >= 8, summary  # P3's raises and clears of that hour
        assert Counter(reason for _, reason in webhook.rejected)["in its outage"] >= len(made_then)
        print(f"webhook: {len(hooks)} deliveries, {webhook.requests} requests, refused "
              f"{dict(Counter(reason for _, reason in webhook.rejected))}; {len(mail.received())} mails")

        # The mails are in Japanese and link to the plant pages.
        texts = "\n".join(m.text for m in mail.received())
        assert "発電所ページ: https://pms.example.jp/plants/" in texts
        assert all(m.login == "pms" for m in mail.received())
    finally:
        webhook.stop()
        mail.stop()
