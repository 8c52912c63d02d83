"""Dead letters: the API lists deliveries by state and scope and retries a dead one (pending again, due
now, attempts kept, audited; 409 unless dead); the console's /deliveries page shows the dead ones
with their error and its retry button takes the same step. The deliveries are made and failed
through the registry's own steps, as the alerts service's notifier takes them."""

from __future__ import annotations

from pms_common import timeutil
from pms_registry import deliveries
from tests.api.conftest import Api, form_post
from tests.api.test_api_alerts import ok, refusal
from tests.api.test_console_alerts import _c1_user, _login, _page


def dead_delivery(api: Api, customer_id: str | None, name: str, error: str = "HTTP 500 from the receiver",
                  attempts: int = 3) -> deliveries.Delivery:
    now = timeutil.now_jst()
    channel = api.registry.create_channel(kind="webhook", name=name, customer_id=customer_id, at=now,
                                          config={"url": "https://hooks.example.jp/x", "secrets": ["whsec_x"]})
    delivery = api.registry.create_delivery(channel_id=channel.channel_id, queue_ids=[], at=now,
                                            idempotency_key=f"key-{name}",
                                            body={"happenings": [{"happening_id": 1}, {"happening_id": 2}]})
    assert delivery is not None
    for attempt in range(attempts):
        api.registry.record_failed(delivery.delivery_id, at=now, error=error,
                                   next_attempt_at=None if attempt == attempts - 1 else now)
    found = api.registry.get_delivery(delivery.delivery_id)
    assert found is not None and found.state == "dead"
    return found


def test_dead_letters_are_listed_by_scope_and_retried_once_dead(api: Api) -> None:
    mine = dead_delivery(api, "c1", "c1 hook")
    theirs = dead_delivery(api, "c2", "c2 hook")
    listed = ok(api.get("/api/v1/deliveries?state=dead"))
    assert listed["total"] == 2 and {d["delivery_id"] for d in listed["items"]} == {mine.delivery_id,
                                                                                     theirs.delivery_id}
    c1 = ok(api.get("/api/v1/deliveries?state=dead", api.keys["c1"]))
    assert [d["delivery_id"] for d in c1["items"]] == [mine.delivery_id]
    item = c1["items"][0]
    assert (item["channel_name"], item["attempts"], item["last_error"], item["happenings"]) == \
        ("c1 hook", 3, "HTTP 500 from the receiver", 2)
    assert refusal(api.send("POST", f"/api/v1/deliveries/{theirs.delivery_id}/retry", key=api.keys["c1"]), 404)
    retried = ok(api.send("POST", f"/api/v1/deliveries/{mine.delivery_id}/retry", key=api.keys["c1"]))
    assert (retried["state"], retried["attempts"]) == ("pending", 3)
    stored = api.registry.get_delivery(mine.delivery_id)
    assert stored is not None and stored.state == "pending" and stored.next_attempt_at <= timeutil.now_jst()
    assert "only a dead one" in refusal(api.send("POST", f"/api/v1/deliveries/{mine.delivery_id}/retry"), 409)
    assert ok(api.get("/api/v1/deliveries?state=dead"))["total"] == 1
    assert ok(api.get("/api/v1/audit?action=delivery_retry"))["items"][0]["target"] == f"delivery:{mine.delivery_id}"
    assert "state" in refusal(api.get("/api/v1/deliveries?state=lost"), 422)


def test_the_dead_letters_page_shows_the_error_and_retries(api: Api) -> None:
    mine = dead_delivery(api, "c1", "c1 hook", error="connection refused")
    theirs = dead_delivery(api, "c2", "c2 hook")
    _login(api)
    page = _page(api, "/deliveries")
    assert 'id="nav-deliveries"' in page and "connection refused" in page
    assert f'data-delivery="{mine.delivery_id}"' in page and f'data-delivery="{theirs.delivery_id}"' in page
    response = form_post(api.client, f"/deliveries/{theirs.delivery_id}/retry", {})
    assert response.status_code == 302
    assert api.registry.get_delivery(theirs.delivery_id).state == "pending"  # type: ignore[union-attr]
    page = _page(api, "/deliveries")
    assert f"Delivery {theirs.delivery_id} queued again" in page and f'data-delivery="{theirs.delivery_id}"' not in page
    form_post(api.client, f"/deliveries/{theirs.delivery_id}/retry", {})
    assert "Not possible: delivery" in _page(api, "/deliveries")
    form_post(api.client, "/logout", {})
    _c1_user(api)
    page = _page(api, "/deliveries")
    assert f'data-delivery="{mine.delivery_id}"' in page
    assert form_post(api.client, f"/deliveries/{theirs.delivery_id}/retry", {}).status_code == 404
