"""/api/v1/deliveries: notifications to channels and how sending them went, dead letters retried.

The alerts service's notifier sends each delivery with retries and backoff up to a maximum age, then
marks it dead (docs/alerts.md). An operator reads the dead ones here, with their last error, and
sends one again once the receiver is fixed: it goes back to pending, due now, its attempts kept.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_openapi3 import APIBlueprint, Tag

from pms_api.access import actor_of, principal
from pms_api.alert_actions import delivery_in_scope, retry_delivery
from pms_api.alert_models import DeliveryOut, DeliveryPage, DeliveryPath, DeliveryQuery
from pms_api.jsonout import json_response
from pms_api.models import Problem
from pms_registry import Registry, deliveries

DELIVERIES = Tag(name="deliveries", description="Notifications sent to channels; dead letters and their retry")
ANSWERS: dict[Any, Any] = {404: Problem}


def delivery_out(delivery: deliveries.Delivery) -> DeliveryOut:
    return DeliveryOut(delivery_id=delivery.delivery_id, channel_id=delivery.channel_id,
                       channel_name=delivery.channel_name, channel_kind=delivery.channel_kind,
                       customer_id=delivery.customer_id, happenings=len(delivery.happening_ids),
                       state=delivery.state, attempts=delivery.attempts, created_at=delivery.created_at,
                       next_attempt_at=delivery.next_attempt_at, last_attempt_at=delivery.last_attempt_at,
                       last_error=delivery.last_error, delivered_at=delivery.delivered_at)


def add_delivery_routes(api: APIBlueprint, registry: Registry) -> None:
    @api.get("/deliveries", tags=[DELIVERIES], responses={200: DeliveryPage})
    def list_deliveries(query: DeliveryQuery) -> Response:
        """Deliveries, newest first; state=dead for the dead letters. A customer key sees its channels'."""
        customer_id = principal().customer_id
        items = registry.list_deliveries(state=query.state, customer_id=customer_id, limit=query.limit,
                                         offset=query.offset)
        return json_response(DeliveryPage(items=[delivery_out(d) for d in items], limit=query.limit,
                                          offset=query.offset,
                                          total=registry.count_deliveries(state=query.state, customer_id=customer_id)))

    @api.get("/deliveries/<int:delivery_id>", tags=[DELIVERIES], responses={200: DeliveryOut, **ANSWERS})
    def get_delivery(path: DeliveryPath) -> Response:
        """One delivery."""
        return json_response(delivery_out(delivery_in_scope(registry, path.delivery_id, principal().customer_id)))

    @api.post("/deliveries/<int:delivery_id>/retry", tags=[DELIVERIES],
              responses={200: DeliveryOut, 409: Problem, **ANSWERS})
    def retry(path: DeliveryPath) -> Response:
        """Send a dead delivery again (pending, due now, its attempts and last error kept); 409 unless dead."""
        return json_response(delivery_out(retry_delivery(registry, path.delivery_id,
                                                         customer_id=principal().customer_id,
                                                         actor=actor_of(registry))))
