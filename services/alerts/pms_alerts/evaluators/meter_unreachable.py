"""meter_unreachable: the gateway is online (it talks to us) but no power reading of its meter has
been stored for `silent_s` seconds: the B-route link to the meter fails while MQTT works.

Per plant, over its bound gateways: holds when an online gateway is silent that long (the first such
is named), clears when every online gateway has a fresh reading, None when none is online (an
offline gateway is gateway_offline's business, which inhibits this kind). A gateway configured to
read power less often than `silent_s` is judged against two of its intervals instead, so a slow
interval is not taken for a dead meter.

Sooner when the gateway says so: once its heartbeat's read-error counter has risen since the last
reading was stored and no reading came for two power intervals, the condition holds without waiting
for `silent_s` (the counter at the last reading is remembered here, from the first tick that saw
that reading; after a restart the next reading sets it again). One store query a tick
(`latest_power` of all gateways)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pms_alerts.conditions import FleetFacts, Observation, PlantContext
from pms_alerts.evaluators.common import enabled, param, stamp
from pms_registry.records import AlertRule
from pms_store import TimeSeriesStore

DEFAULT_SILENT_S = 600.0


class MeterUnreachable:
    kind = "meter_unreachable"

    def __init__(self, store: TimeSeriesStore) -> None:
        self.store = store
        # gateway -> (the latest reading's time, the heartbeat's read-error count when it was first seen)
        self._errors_at_reading: dict[str, tuple[datetime, int]] = {}

    def observe_all(self, plants: Sequence[PlantContext], rules: Mapping[str, AlertRule],
                    now: datetime, facts: FleetFacts) -> dict[str, Observation]:
        watched = enabled(plants, rules)
        online = {g for p in watched for g in p.gateway_ids if facts.online.get(g)}
        latest = self.store.latest_power(sorted(online)) if online else {}
        observed: dict[str, Observation] = {}
        for plant in watched:
            silent_s = param(rules[plant.service_code], "silent_s", DEFAULT_SILENT_S)
            verdicts = []
            for gateway_id in plant.gateway_ids:
                if gateway_id not in online:
                    continue
                heartbeat = facts.heartbeats.get(gateway_id)
                limit = max(silent_s, 2 * heartbeat.power_interval_s) if heartbeat is not None else silent_s
                reading = latest.get(gateway_id)
                quiet = None if reading is None else (now - reading.measured_at).total_seconds()
                failing = False
                if reading is not None and heartbeat is not None:
                    seen = self._errors_at_reading.get(gateway_id)
                    if seen is None or seen[0] != reading.measured_at:
                        self._errors_at_reading[gateway_id] = seen = (reading.measured_at, heartbeat.read_errors_total)
                    failing = heartbeat.read_errors_total > seen[1] and quiet is not None \
                        and quiet >= 2 * heartbeat.power_interval_s
                params = {"gateway_id": gateway_id, "silent_s": None if quiet is None else round(quiet),
                          "threshold_s": round(limit),
                          "last_reading_at": None if reading is None else stamp(reading.measured_at),
                          "read_errors": None if heartbeat is None else heartbeat.read_errors_total}
                verdicts.append((quiet is None or quiet >= limit or failing, gateway_id, params))
            if not verdicts:
                continue
            silent = [v for v in verdicts if v[0]]
            _, gateway_id, params = silent[0] if silent else verdicts[0]
            observed[plant.service_code] = Observation(bool(silent), params, gateway_id=gateway_id)
        return observed
