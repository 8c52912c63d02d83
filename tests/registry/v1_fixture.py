"""A registry as PMS v1 left it: the v1 tables with a customer, a plant, a gateway, a key, an event, a notice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert

from pms_common.timeutil import JST
from tests.registry import schema_v1 as v1

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=JST)


def make_v1_registry(engine: Engine) -> None:
    v1.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(v1.schema_version).values(id=1, version=1))
        conn.execute(insert(v1.service_code_counter).values(id=1, last_issued=7))
        conn.execute(insert(v1.customers).values(customer_id="c1", name="Old Customer"))
        conn.execute(insert(v1.plants).values(service_code="pss00000007", customer_id="c1", name="Old Plant",
                                              address="Tokyo", phone="03", created_at=T0, tariff_yen_per_kwh=16.0))
        conn.execute(insert(v1.gateways).values(gateway_id="gw-old", service_code="pss00000007", status="online",
                                                power_interval_s=60.0))
        conn.execute(insert(v1.api_keys).values(key_id="k1", key_hash="0" * 64, customer_id=None, label="old",
                                                created_at=T0, revoked=False))
        conn.execute(insert(v1.events).values(kind="gateway_offline", state="open", gateway_id="gw-old",
                                              service_code="pss00000007", opened_at=T0, message="old event"))
        conn.execute(insert(v1.notices).values(kind="maintenance", title="old notice", body="", created_at=T0))
