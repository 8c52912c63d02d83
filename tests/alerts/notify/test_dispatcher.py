"""The notifier against a real registry file, a real SMTP server (aiosmtpd, STARTTLS + login) and a
local webhook receiver that checks the HMAC and refuses replays: one notification per happening per
channel, retries through an hour of 500s, dead letters, restarts that repeat and lose nothing."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import update

from pms_registry import schema as t
from tests.alerts.notify.conftest import Fleet, notify_settings


def test_one_notification_per_happening_per_channel(fleet: Fleet) -> None:
    code = fleet.codes[0]
    dispatcher = fleet.dispatcher()
    fleet.raise_offline(code)
    [first] = fleet.run(dispatcher, seconds=0)
    assert (first.queued, first.grouped) == (2, 0)  # webhook and mail queued; the group waits 30 s
    fleet.run(dispatcher, seconds=60)
    [accepted] = fleet.webhook.accepted
    [happening] = accepted.body["happenings"]
    assert (happening["kind"], happening["phase"], happening["service_code"]) == ("gateway_offline", "raised", code)
    assert happening["plant_name"] == "発電所1"
    [mail] = fleet.mail.received()
    assert mail.rcpt_tos == ["ops@example.jp"] and mail.login == "pms"
    assert mail.subject.startswith("[PMS] 異常発生: 発電所1 (" + code + ")")
    assert f"https://pms.example.jp/plants/{code}" in mail.text
    assert "発生日時: 2026年06月01日 12:00" in mail.text

    fleet.clear_offline(code)  # within the group interval of the raise: waits for its end
    fleet.run(dispatcher, seconds=600)
    assert [item.body["happenings"][0]["phase"] for item in fleet.webhook.accepted] == ["raised", "cleared"]
    assert [item.body["happenings"][0]["kind"] for item in fleet.webhook.accepted] == ["gateway_offline"] * 2
    assert len(fleet.mail.received()) == 2
    assert "復旧" in fleet.mail.received()[1].subject
    deliveries = fleet.registry.list_deliveries()
    assert [d.state for d in deliveries] == ["delivered"] * 4
    assert all(d.attempts == 1 for d in deliveries)
    assert fleet.webhook.rejected == []


def test_the_receiver_refuses_a_replayed_request(fleet: Fleet) -> None:
    """What a receiver that follows docs/alerts.md does with a captured request sent again."""
    fleet.raise_offline(fleet.codes[0])
    fleet.run(fleet.dispatcher(), seconds=40)
    [delivery] = [d for d in fleet.registry.list_deliveries() if d.channel_kind == "webhook"]
    from pms_alerts.notify.payload import body_bytes
    from pms_alerts.notify.signing import signed_headers
    body = body_bytes(delivery.body)
    headers = signed_headers(body=body, secrets=["whsec_previous"], timestamp=int(fleet.clock.unix()),
                             idempotency_key=delivery.idempotency_key, delivery_id=delivery.delivery_id)
    replay = httpx.post(fleet.webhook.url, content=body, headers=headers)
    assert replay.status_code == 409
    stale = signed_headers(body=body, secrets=["whsec_previous"], timestamp=int(fleet.clock.unix()) - 301,
                           idempotency_key="another-key", delivery_id=delivery.delivery_id)
    assert httpx.post(fleet.webhook.url, content=body, headers=stale).status_code == 401
    forged = dict(headers, **{"Idempotency-Key": "forged"})
    forged["X-PMS-Signature"] = "v1=" + "0" * 64
    assert httpx.post(fleet.webhook.url, content=body, headers=forged).status_code == 401
    assert len(fleet.webhook.accepted) == 1


def test_a_receiver_answering_500_for_an_hour_gets_each_delivery_once_afterwards(fleet: Fleet) -> None:
    dispatcher = fleet.dispatcher()
    fleet.webhook.fail_with = 500
    fleet.raise_offline(fleet.codes[0])
    fleet.run(dispatcher, seconds=400, step_s=60)
    fleet.raise_offline(fleet.codes[1])
    fleet.run(dispatcher, seconds=400, step_s=60)
    fleet.clear_offline(fleet.codes[0])
    fleet.run(dispatcher, seconds=3600 - 800, step_s=60)  # an hour of 500s
    failing = [d for d in fleet.registry.list_deliveries() if d.channel_kind == "webhook"]
    assert len(failing) == 3 and all(d.state == "pending" and d.attempts >= 3 for d in failing)
    assert all("answered 500" in (d.last_error or "") for d in failing)
    refused = fleet.webhook.requests
    assert len(fleet.mail.received()) == 3  # the mail channel is not held up by the webhook
    assert sorted(fleet.mail.received_happenings()) == [1, 2, 3]

    fleet.webhook.fail_with = None
    fleet.run(dispatcher, seconds=900, step_s=60)  # the cap is 600 s: every delivery is tried again by then
    delivered = [d for d in fleet.registry.list_deliveries() if d.channel_kind == "webhook"]
    assert [d.state for d in delivered] == ["delivered"] * 3
    happenings = list(fleet.webhook.accepted_happenings())
    assert sorted(happenings) == sorted(set(happenings)) and len(happenings) == 3
    assert fleet.webhook.requests == refused + 3  # once each after the outage, no duplicates
    assert all(not d.last_error for d in delivered)


def test_dead_after_the_maximum_age_then_retried_from_the_console(fleet: Fleet) -> None:
    fleet.settings = notify_settings(fleet.mail, retry_max_age_s=1800.0)
    dispatcher = fleet.dispatcher()
    fleet.webhook.fail_with = 503
    fleet.raise_offline(fleet.codes[0])
    fleet.run(dispatcher, seconds=2400, step_s=60)
    [dead] = fleet.registry.list_deliveries(state="dead", customer_id="c1")
    assert dead.channel_kind == "webhook" and dead.channel_name == "ops hook"
    assert "answered 503" in (dead.last_error or "") and dead.attempts >= 5
    assert dead.last_attempt_at is not None and dead.last_attempt_at - dead.created_at <= fleet.clock.now - dead.created_at
    assert fleet.registry.count_deliveries(state="dead") == 1
    assert fleet.registry.list_deliveries(state="dead", customer_id="other") == []
    requests = fleet.webhook.requests
    fleet.run(dispatcher, seconds=600, step_s=60)
    assert fleet.webhook.requests == requests  # a dead delivery is not tried again by itself

    fleet.webhook.fail_with = None
    retried = fleet.registry.retry_delivery(dead.delivery_id, at=fleet.clock.now)
    assert (retried.state, retried.attempts) == ("pending", dead.attempts)
    fleet.run(dispatcher, seconds=0)
    again = fleet.registry.get_delivery(dead.delivery_id)
    assert again is not None and again.state == "delivered" and again.attempts == dead.attempts + 1
    assert len(fleet.webhook.accepted) == 1


def test_a_restart_repeats_and_loses_nothing(fleet: Fleet) -> None:
    fleet.add_plants(7)
    for code in fleet.codes[:5]:
        fleet.raise_offline(code)
    first = fleet.dispatcher(seed=1)
    assert asyncio.run(first.run_once()).queued == 10
    # A restart: a new dispatcher (a new process) on the same registry; more happenings meanwhile.
    for code in fleet.codes[5:]:
        fleet.raise_offline(code)
    second = fleet.dispatcher(seed=2)
    assert asyncio.run(second.run_once()).queued == 10  # only the new ones
    fleet.clock.advance(30)
    assert asyncio.run(second.run_once()).delivered == 2
    # A crash after the receiver took a delivery but before its success was recorded: the restarted
    # notifier sends it again with the same idempotency key; the receiver answers 409, nothing doubles.
    with fleet.registry.engine.begin() as conn:
        conn.execute(update(t.deliveries).values(state="pending", next_attempt_at=fleet.clock.now))
    third = fleet.dispatcher(seed=3)
    report = asyncio.run(third.run_once())
    assert (report.queued, report.grouped, report.delivered) == (0, 0, 2)
    assert sorted(fleet.webhook.accepted_happenings()) == list(range(1, 11))
    assert len(fleet.webhook.accepted) == 1 and len(fleet.mail.received()) == 2  # mail has no 409: sent again
    assert fleet.mail.received()[0].message["Message-ID"] == fleet.mail.received()[1].message["Message-ID"]
    assert {d.state for d in fleet.registry.list_deliveries()} == {"delivered"}


def test_wrong_smtp_login_is_recorded_and_retried_not_a_crash(fleet: Fleet) -> None:
    fleet.settings = notify_settings(fleet.mail, smtp_url=f"smtp://pms:wrong@localhost:{fleet.mail.port}")
    dispatcher = fleet.dispatcher()
    fleet.raise_offline(fleet.codes[0])
    fleet.run(dispatcher, seconds=60)
    [mail_delivery] = [d for d in fleet.registry.list_deliveries() if d.channel_kind == "email"]
    assert mail_delivery.state == "pending"
    assert "refused the login of 'pms'" in (mail_delivery.last_error or "")
    assert fleet.mail.received() == [] and len(fleet.webhook.accepted) == 1


def test_channels_below_their_minimum_severity_get_nothing(fleet: Fleet) -> None:
    fleet.registry.update_channel(fleet.mail_channel.channel_id, at=fleet.clock.now, min_severity="critical")
    fleet.registry.update_channel(fleet.webhook_channel.channel_id, at=fleet.clock.now, enabled=False)
    event_at = fleet.clock.now
    fleet.registry.record_info_event(kind="billing_start_decided", at=event_at, service_code=fleet.codes[0],
                                     message="billing start decided", severity="info")
    fleet.run(fleet.dispatcher(), seconds=60)
    assert fleet.registry.list_deliveries() == []
    assert fleet.registry.notify_backlog()["queued"] == 0


def test_a_broken_channel_fails_its_deliveries_not_the_notifier(fleet: Fleet) -> None:
    fleet.registry.update_channel(fleet.webhook_channel.channel_id, at=fleet.clock.now,
                                  config={"url": fleet.webhook.url, "secrets": []})
    fleet.registry.update_channel(fleet.mail_channel.channel_id, at=fleet.clock.now, config={"to": 42})
    fleet.raise_offline(fleet.codes[0])
    fleet.run(fleet.dispatcher(), seconds=60)
    errors = {d.channel_kind: d.last_error for d in fleet.registry.list_deliveries()}
    assert errors["webhook"] == "a webhook channel needs at least one secret to sign with"
    assert errors["email"] is not None and "TypeError" in errors["email"]
    assert {d.state for d in fleet.registry.list_deliveries()} == {"pending"}


def test_each_customer_hears_of_its_own_plants_and_the_operator_of_all(fleet: Fleet) -> None:
    registry, now = fleet.registry, fleet.clock.now
    registry.ensure_customer("c2", "南風ソーラー")
    other_plant = registry.create_plant(customer_id="c2", name="南風", address="那覇市", phone="098", created_at=now)
    other = registry.create_channel(kind="webhook", name="c2 hook", customer_id="c2", at=now,
                                    config={"url": fleet.webhook.url, "secrets": ["whsec_previous"]})
    operator = registry.create_channel(kind="webhook", name="operator", customer_id=None, at=now,
                                       config={"url": fleet.webhook.url, "secrets": ["whsec_previous"]})
    fleet.raise_offline(fleet.codes[0])
    fleet.raise_offline(fleet.codes[1])
    fleet.raise_offline(other_plant)
    fleet.run(fleet.dispatcher(), seconds=60)
    heard = {item.body["channel_id"]: sorted(h["service_code"] for h in item.body["happenings"])
             for item in fleet.webhook.accepted}
    assert heard == {fleet.webhook_channel.channel_id: sorted(fleet.codes[:2]), other.channel_id: [other_plant],
                     operator.channel_id: sorted([*fleet.codes[:2], other_plant])}
