"""The notification outbox (pms_registry.deliveries) on SQLite and PostgreSQL: queueing is idempotent
and moves the cursor with it, a group's key is made once, attempts end delivered or dead, and the
console's list / count / retry of dead letters."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pms_common.timeutil import JST
from pms_registry import Registry, RegistryError

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


def test_the_outbox_from_queue_to_dead_letter_and_back(registry: Registry) -> None:
    registry.ensure_customer("c1", "one")
    registry.ensure_customer("c2", "two")
    code = registry.create_plant(customer_id="c1", name="北斗", address="a", phone="p", created_at=T0)
    hook = registry.create_channel(kind="webhook", name="hook", customer_id="c1", at=T0,
                                   config={"url": "http://127.0.0.1:9/", "secrets": ["s"]})
    other = registry.create_channel(kind="email", name="mail", customer_id="c2", at=T0, config={"to": ["x@y"]})
    first = registry.record_info_event(kind="billing_start_decided", at=T0, service_code=code, message="m1",
                                       severity="warning")
    registry.record_info_event(kind="billing_start_decided", at=T0, service_code=code, message="m2",
                               severity="warning")
    [h1, h2] = registry.happenings_after(0)
    assert h1.event.event_id == first.event_id

    assert registry.enqueue_happenings({h1.happening_id: [hook.channel_id]}, cursor="notify",
                                       cursor_value=h1.happening_id, at=T0) == 1
    # A repeat after a crash queues nothing twice; the cursor moves with the rows.
    assert registry.enqueue_happenings({h1.happening_id: [hook.channel_id], h2.happening_id: [hook.channel_id]},
                                       cursor="notify", cursor_value=h2.happening_id,
                                       at=T0 + timedelta(seconds=5)) == 1
    assert registry.get_cursor("notify") == h2.happening_id
    assert registry.queue_heads() == {hook.channel_id: T0}
    assert registry.queue_heads()[hook.channel_id].tzinfo is not None
    rows = registry.queued_for(hook.channel_id)
    assert [row.happening_id for row in rows] == [h1.happening_id, h2.happening_id]
    assert [h.happening_id for h in registry.happenings_by_id([h2.happening_id, h1.happening_id])] == [
        h1.happening_id, h2.happening_id]
    assert registry.plant_names([code, "pss99999999"]) == {code: "北斗"}

    made_at = T0 + timedelta(seconds=30)
    delivery = registry.create_delivery(channel_id=hook.channel_id, queue_ids=[row.queue_id for row in rows],
                                        idempotency_key="k" * 64, body={"happenings": [{"happening_id": 1}]},
                                        at=made_at)
    assert delivery is not None and delivery.state == "pending" and delivery.next_attempt_at == made_at
    assert (delivery.channel_kind, delivery.channel_name, delivery.customer_id) == ("webhook", "hook", "c1")
    assert registry.create_delivery(channel_id=hook.channel_id, queue_ids=[], idempotency_key="k" * 64,
                                    body={}, at=made_at) is None
    assert registry.queue_heads() == {}
    assert registry.last_delivery_times() == {hook.channel_id: made_at}
    assert registry.due_deliveries(now=made_at - timedelta(seconds=1)) == []
    assert [d.delivery_id for d in registry.due_deliveries(now=made_at)] == [delivery.delivery_id]

    registry.record_failed(delivery.delivery_id, at=made_at, error="answered 500",
                           next_attempt_at=made_at + timedelta(seconds=10))
    assert registry.next_delivery_attempt() == made_at + timedelta(seconds=10)
    registry.record_failed(delivery.delivery_id, at=made_at + timedelta(seconds=10), error="answered 503",
                           next_attempt_at=None)
    assert registry.notify_backlog() == {"queued": 0, "pending": 0, "delivered": 0, "dead": 1}
    [dead] = registry.list_deliveries(state="dead", customer_id="c1")
    assert (dead.attempts, dead.last_error) == (2, "answered 503")
    assert registry.list_deliveries(state="dead", customer_id="c2") == []
    assert registry.count_deliveries(state="dead") == 1 and registry.count_deliveries(customer_id="c2") == 0
    with pytest.raises(RegistryError, match="state is one of"):
        registry.list_deliveries(state="lost")

    retried = registry.retry_delivery(dead.delivery_id, at=T0 + timedelta(hours=2))
    assert (retried.state, retried.attempts, retried.next_attempt_at) == ("pending", 2, T0 + timedelta(hours=2))
    with pytest.raises(RegistryError, match="only a dead one can be retried"):
        registry.retry_delivery(dead.delivery_id, at=T0)
    with pytest.raises(RegistryError, match="no delivery 999"):
        registry.retry_delivery(999, at=T0)
    registry.record_delivered(dead.delivery_id, at=T0 + timedelta(hours=2))
    done = registry.get_delivery(dead.delivery_id)
    assert done is not None and (done.state, done.attempts, done.delivered_at) == ("delivered", 3,
                                                                                  T0 + timedelta(hours=2))
    assert other.channel_id not in registry.last_delivery_times()
    assert registry.discard_queued([other.channel_id]) == 0
