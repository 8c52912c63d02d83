"""Posting one delivery to a webhook: signed headers, the body's exact bytes, a timeout (httpx)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from pms_alerts.notify.payload import body_bytes
from pms_alerts.notify.signing import SignatureError, signed_headers
from pms_common.errors import PmsError


class WebhookError(PmsError):
    """A webhook delivery the receiver did not take; the message says what happened."""


async def post_delivery(client: httpx.AsyncClient, *, config: Mapping[str, Any], body: Mapping[str, Any],
                        idempotency_key: str, delivery_id: int, timestamp: int) -> None:
    """Deliver, or raise WebhookError. A 2xx answer takes the delivery, and so does 409: the receiver
    says it holds this idempotency key already (our earlier attempt reached it, its answer did not
    reach us), so there is nothing left to deliver."""
    url = config.get("url")
    secrets = [str(secret) for secret in config.get("secrets") or [] if secret]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise WebhookError(f"the channel's webhook URL {url!r} is not an http(s) URL")
    data = body_bytes(body)
    try:
        headers = signed_headers(body=data, secrets=secrets, timestamp=timestamp, idempotency_key=idempotency_key,
                                 delivery_id=delivery_id)
    except SignatureError as exc:
        raise WebhookError(str(exc)) from exc
    try:
        response = await client.post(url, content=data, headers=headers)
    except httpx.TimeoutException as exc:
        raise WebhookError(f"{url} did not answer in time ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise WebhookError(f"cannot reach {url}: {exc or type(exc).__name__}") from exc
    if response.is_success or response.status_code == 409:
        return
    detail = response.text.strip().replace("\n", " ")[:200]
    raise WebhookError(f"{url} answered {response.status_code}{': ' + detail if detail else ''}")
