"""A gateway's status as the API and the console show it: its binding, presence history and the
health its latest heartbeat reported, assembled from the registry."""

from __future__ import annotations

from typing import Any

from pms_api.gateway_models import BindingOut, GatewayDetail, GatewayOut, PresenceOut
from pms_registry import Registry
from pms_registry.records import Gateway

PRESENCE_SHOWN = 20


class GatewayStatus:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def listing(self, customer_id: str | None, *, condition: str | None = None,
                of_customer: str | None = None) -> list[GatewayOut]:
        """The gateways `customer_id` (None: an admin) may see, optionally one condition's, or only
        those bound to `of_customer`'s plants."""
        if customer_id is not None and of_customer is not None and of_customer != customer_id:
            return []
        gateways = self.registry.list_gateways(customer_id or of_customer)
        if condition is not None:
            gateways = [g for g in gateways if g.condition == condition]
        names = self._plant_names(customer_id)
        since = self.registry.bound_since()
        return [_out(g, names, since.get(g.gateway_id)) for g in gateways]

    def detail(self, gateway_id: str, customer_id: str | None) -> GatewayDetail | None:
        """One gateway with its bindings (a customer sees those to its own plants) and presence
        history; None when unknown or out of the customer's scope."""
        gateway = self.registry.get_gateway(gateway_id, customer_id)
        if gateway is None:
            return None
        names = self._plant_names(customer_id)
        history = [b for b in self.registry.binding_history(gateway_id)
                   if customer_id is None or b.service_code in names]
        current = next((b for b in history if b.bound_until is None), None)
        return GatewayDetail(
            **_out(gateway, names, current.bound_from if current else None).model_dump(),
            bindings=[BindingOut(service_code=b.service_code, plant_name=names.get(b.service_code),
                                 bound_from=b.bound_from, bound_until=b.bound_until) for b in history],
            presence=[PresenceOut(state=p.state, at=p.at, reason=p.reason)
                      for p in self.registry.presence_history(gateway_id, limit=PRESENCE_SHOWN)],
        )

    def _plant_names(self, customer_id: str | None) -> dict[str, str]:
        return {p.service_code: p.name for p in self.registry.list_plants(customer_id)}


def _out(gateway: Gateway, names: dict[str, str], bound_since: Any) -> GatewayOut:
    beat: dict[str, Any] = gateway.heartbeat or {}
    backfill: dict[str, Any] = beat.get("backfill") or {}
    return GatewayOut(
        gateway_id=gateway.gateway_id, service_code=gateway.service_code,
        plant_name=names.get(gateway.service_code or ""), bound_since=bound_since,
        condition=gateway.condition,
        status=gateway.status, status_changed_at=gateway.status_changed_at, last_seen_at=gateway.last_seen_at,
        decommissioned_at=gateway.decommissioned_at, power_interval_s=gateway.power_interval_s,
        heartbeat_at=beat.get("at"), uptime_s=beat.get("uptime_s"), firmware=beat.get("firmware"),
        module_family=beat.get("module_family"), rssi_dbm=beat.get("rssi_dbm"), lqi=beat.get("lqi"),
        read_errors_total=beat.get("read_errors_total"), outbox_depth=beat.get("outbox_depth"),
        backfill_pending_days=backfill.get("pending_days"), backfill_last_failure=backfill.get("last_failure"),
        meter_clock_skew_s=beat.get("meter_clock_skew_s"), meter_scale_problem=beat.get("meter_scale_problem"),
        heartbeat=gateway.heartbeat,
    )
