"""The alerts service: follows gateway presence over MQTT, evaluates the alert rules on a clock, and
records every episode in the registry.

Every `evaluate_s` (of the service's clock), it loads the plants, their scopes and the rules (again
at most every `rules_refresh_s`), picks the effective rule of each kind per plant, asks every
condition for its observations, and steps the episode state machine (`pms_alerts.engine`) per
(kind, subject). Raises, clears and pending timers go to the registry, which journals the raises,
clears and acknowledgements; the notifier (`pms_alerts.notify`) publishes the journal to MQTT and
the channels, so this module publishes nothing itself.

Information-only kinds stay as they were: billing start (`billing`), register anomalies
(`anomalies`) on their own periods, and history conflicts from heartbeats (`meter_faults`).

State survives a restart because all of it is in the registry: on start the open episodes (pending
with their timers, firing) and the episodes resolved within the last hour (flap history) are loaded.
What MQTT said is learnt again: the retained statuses tell which gateways are offline; a gateway
that went silent while alerts was down still has a retained "online" status, and is seen offline
`missed_heartbeats` heartbeat intervals after alerts started, when it stays silent.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import aiomqtt
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from pms_alerts.anomalies import RegisterAnomalyRule
from pms_alerts.billing import BillingStartRule
from pms_alerts.clock import Clock, FileClock, SystemClock
from pms_alerts.conditions import Condition, FleetFacts, Observation, PlantContext
from pms_alerts.engine import FLAP_WINDOW, AlertKey, Step, is_open, step
from pms_alerts.fleet_conditions import GatewayOffline, MeterClockSkew, MeterScaleInvalid
from pms_alerts.meter_faults import HistoryConflictLog
from pms_alerts.notify.notifier import Notifier
from pms_alerts.rules import INHIBITED_BY_GATEWAY_OFFLINE, effective_rules, global_rule
from pms_alerts.settings import AlertsSettings
from pms_common import event_text, topics
from pms_common.contract_reader import ContractReader
from pms_common.health import Health
from pms_common.liveness import Transition
from pms_common.messages import GatewayStatus, Heartbeat, UpdateReport
from pms_common.mqtt import BrokerAddress
from pms_common.presence import follow_presence
from pms_registry import Registry, RegistryError
from pms_registry.records import AlertChange, AlertRecord, AlertRule
from pms_registry.registry import EventRecord
from pms_store import StoreError, TimeSeriesStore

log = logging.getLogger(__name__)

EVENTS = Counter("pms_alerts_events_total", "Events raised or recovered", ["kind"])
BAD_PAYLOADS = Counter("pms_alerts_bad_payloads_total", "Presence payloads that broke the contract")
UNKNOWN_FIELDS = Counter("pms_alerts_unknown_fields_total",
                         "Messages read with fields this version does not know (ignored)", ["message"])
MESSAGES = Counter("pms_alerts_messages_total", "MQTT messages handled", ["message"])
EPISODES = Gauge("pms_alerts_episodes", "Open alert episodes", ["kind", "state"])
EVALUATION_SECONDS = Histogram("pms_alerts_evaluation_seconds", "Time one evaluation of every rule took",
                               buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
EVALUATED_UNTIL = Gauge("pms_alerts_evaluated_until_seconds",
                        "The service clock's time (Unix seconds) of the last finished evaluation")
RULE_ERRORS = Counter("pms_alerts_rule_errors_total", "Evaluations of a rule kind that failed", ["kind"])
TRANSITIONS = Counter("pms_alerts_episode_steps_total", "Episode writes", ["kind", "decision"])

GATEWAY_SUBJECT = "gateway:"


def clock_of(settings: AlertsSettings) -> Clock:
    return FileClock(settings.alerts_clock_file) if settings.alerts_clock_file is not None else SystemClock()


def generation_conditions(registry: Registry, store: TimeSeriesStore | None) -> tuple[Condition, ...]:
    """The conditions that read the data (`pms_alerts.evaluators.conditions(registry, store)`), when
    that package is there (it is built apart; once merged this can be a plain import)."""
    try:
        module: Any = importlib.import_module("pms_alerts.evaluators")
    except ImportError:
        return ()
    return tuple(module.conditions(registry, store))


def english_message(kind: str, params: dict[str, Any], record: AlertRecord) -> str:
    """The event's stored English sentence: the catalogue's, as MQTT and English readers get it
    (the texts in other languages are rendered from its kind and params when read)."""
    where = {"service_code": record.service_code, "gateway_id": record.gateway_id}
    return event_text.render(kind, "raised", {**{k: v for k, v in where.items() if v is not None}, **params}, "en")


@dataclass(frozen=True)
class Fleet:
    """What one evaluation knows of the registry."""

    plants: list[PlantContext]
    by_code: dict[str, PlantContext]
    rules: list[AlertRule]
    effective: dict[str, dict[str, AlertRule]]  # kind -> service code -> rule
    plant_of: dict[str, str]  # bound gateway -> service code
    retired: frozenset[str]  # decommissioned gateways


class Alerts:
    def __init__(self, settings: AlertsSettings, registry: Registry, health: Health,
                 store: TimeSeriesStore | None = None, *, clock: Clock | None = None,
                 conditions: Sequence[Condition] | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.health = health
        self.clock: Clock = clock or clock_of(settings)
        self.billing = BillingStartRule(registry, store) if store is not None else None
        self.anomalies = RegisterAnomalyRule(registry, store) if store is not None else None
        self.meter_faults = HistoryConflictLog(registry)
        self.facts = FleetFacts(online={}, heartbeats={}, update_reports={})
        # gateway_offline first: its firing episodes inhibit the meter and generation kinds after it.
        self.gateway_conditions = (GatewayOffline(), MeterClockSkew(), MeterScaleInvalid())
        self.conditions: tuple[Condition, ...] = (
            *self.gateway_conditions, *(generation_conditions(registry, store) if conditions is None else conditions))
        self.records: dict[tuple[str, str], AlertRecord] = {}
        self._changes: list[tuple[AlertKey, str, AlertChange]] = []  # this kind's, until _flush
        self._loaded = False
        self._fleet: Fleet | None = None
        self._fleet_at: datetime | None = None
        self._next_evaluation: datetime | None = None
        self._next_billing_check: datetime | None = None
        self._next_anomaly_check: datetime | None = None

    # --- MQTT -------------------------------------------------------------------------------------

    async def on_message(self, client: aiomqtt.Client, message: GatewayStatus | Heartbeat) -> None:
        MESSAGES.labels("heartbeat" if isinstance(message, Heartbeat) else "status").inc()
        if not isinstance(message, Heartbeat):
            return
        self.facts.heartbeats[message.gateway_id] = message
        if message.backfill is not None and message.backfill.last_conflict:
            try:
                records = await asyncio.to_thread(self.meter_faults.history_conflicts, message)
            except RegistryError as exc:
                log.error("alerts: history-conflict check of %s failed: %s", message.gateway_id, exc)
                return
            for record in records:
                EVENTS.labels(record.kind).inc()
                log.warning("alerts: %s", record.message)

    async def on_update_state(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        MESSAGES.labels("update_state").inc()
        if not payload:
            return
        try:
            report = self._reader.parse(UpdateReport, payload)
        except ValidationError as exc:
            BAD_PAYLOADS.inc()
            log.warning("alerts: bad update state on %s: %s", topic, exc.errors()[0]["msg"])
            return
        self.facts.update_reports[report.gateway_id] = report

    async def on_transition(self, client: aiomqtt.Client, transition: Transition) -> None:
        self.facts.online[transition.gateway_id] = transition.state == "online"
        if transition.state == "offline":
            self.facts.offline_reasons[transition.gateway_id] = transition.reason
        else:
            self.facts.offline_reasons.pop(transition.gateway_id, None)

    async def on_tick(self, client: aiomqtt.Client) -> None:
        now = self.clock()
        if self._due(self._next_evaluation, now):
            self._next_evaluation = now + timedelta(seconds=self.settings.evaluate_s)
            facts = FleetFacts(online=dict(self.facts.online), heartbeats=dict(self.facts.heartbeats),
                               update_reports=dict(self.facts.update_reports),
                               offline_reasons=dict(self.facts.offline_reasons))
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self.evaluate, now, facts)
            except RegistryError as exc:
                RULE_ERRORS.labels("registry").inc()
                log.error("alerts: evaluation at %s failed, retrying: %s", now.isoformat(), exc)
                self._next_evaluation = now
            else:
                EVALUATED_UNTIL.set(now.timestamp())
            EVALUATION_SECONDS.observe(time.perf_counter() - started)
        if self.billing is not None and self._due(self._next_billing_check, now):
            self._next_billing_check = now + timedelta(seconds=self.settings.billing_check_s)
            await self._run_info_rule("billing-start", self.billing.check, now)
        if self.anomalies is not None and self._due(self._next_anomaly_check, now):
            self._next_anomaly_check = now + timedelta(seconds=self.settings.anomaly_check_s)
            await self._run_info_rule("register-anomaly", self.anomalies.check, now)

    @staticmethod
    def _due(next_at: datetime | None, now: datetime) -> bool:
        return next_at is None or now >= next_at

    async def _run_info_rule(self, name: str, check: Callable[[datetime], list[EventRecord]], now: datetime) -> None:
        try:
            records = await asyncio.to_thread(check, now)
        except (StoreError, RegistryError) as exc:
            RULE_ERRORS.labels(name).inc()
            log.error("alerts: %s check failed, retrying later: %s", name, exc)
            return
        for record in records:
            EVENTS.labels(record.kind).inc()
            # An anomaly needs someone to look at the meter; a billing decision is just news.
            log.log(logging.WARNING if record.kind == "register_anomaly" else logging.INFO, "alerts: %s",
                    record.message)

    # --- evaluation (blocking: runs in a thread) ---------------------------------------------------

    def load(self, now: datetime) -> None:
        """The open episodes, and those resolved within the flap window (their raise history)."""
        self.records = {(r.kind, r.subject): r for r in self.registry.open_alerts()}
        for record in self.registry.list_alerts(state="resolved", limit=1000, offset=0):
            key = (record.kind, record.subject)
            if key not in self.records and record.resolved_at is not None and now - record.resolved_at < FLAP_WINDOW:
                self.records[key] = record
        self._loaded = True
        log.info("alerts: %d open episodes loaded", sum(1 for r in self.records.values() if is_open(r)))

    def fleet(self, now: datetime) -> Fleet:
        fresh = (self._fleet is not None and self._fleet_at is not None
                 and timedelta(0) <= now - self._fleet_at < timedelta(seconds=self.settings.rules_refresh_s))
        if fresh and self._fleet is not None:
            return self._fleet
        scopes = self.registry.plant_scopes()
        plants = []
        for plant in self.registry.list_plants():
            scope = scopes.get(plant.service_code)
            plants.append(PlantContext(
                service_code=plant.service_code, customer_id=plant.customer_id, gateway_ids=plant.gateway_ids,
                latitude=plant.latitude, longitude=plant.longitude, capacity_kw=plant.capacity_kw,
                tags=scope.tags if scope is not None else frozenset(), plant=plant))
        rules = self.registry.list_alert_rules()
        self._fleet = Fleet(
            plants=plants, by_code={p.service_code: p for p in plants}, rules=rules,
            effective=effective_rules(rules, scopes),
            plant_of={g: p.service_code for p in plants for g in p.gateway_ids},
            retired=frozenset(g.gateway_id for g in self.registry.list_gateways() if g.decommissioned_at is not None))
        self._fleet_at = now
        return self._fleet

    def evaluate(self, now: datetime, facts: FleetFacts) -> None:
        if not self._loaded:
            self.load(now)
        fleet = self.fleet(now)
        for condition in self.conditions:
            kind = condition.kind
            applying = fleet.effective.get(kind, {})
            enabled = {code: rule for code, rule in applying.items() if rule.enabled}
            try:
                observations = condition.observe_all([fleet.by_code[c] for c in enabled], enabled, now, facts)
            except Exception:  # one broken condition must not stop the others
                RULE_ERRORS.labels(kind).inc()
                log.exception("alerts: the %s condition failed at %s", kind, now.isoformat())
                continue
            seen: set[str] = set()
            inhibiting = self._gateway_offline_firing() if kind in INHIBITED_BY_GATEWAY_OFFLINE else set()
            for code, rule in applying.items():
                seen.add(code)
                self._step(AlertKey(kind, code, code), rule, observations.get(code),
                           inhibited=code in inhibiting, now=now)
            if isinstance(condition, GatewayOffline | MeterClockSkew | MeterScaleInvalid):
                seen |= self._unbound(condition, fleet, now, facts)
            self._end_orphans(kind, seen, fleet, now)
            # One transaction per kind: gateway_offline's firing episodes are recorded before the
            # kinds it inhibits are stepped.
            self._flush()
        self._prune(now)
        self._count()

    def _unbound(self, condition: GatewayOffline | MeterClockSkew | MeterScaleInvalid, fleet: Fleet,
                 now: datetime, facts: FleetFacts) -> set[str]:
        """Gateways bound to no plant, under the kind's global rule: subject `gateway:<id>`."""
        rule = global_rule(fleet.rules, condition.kind)
        if rule is None:
            return set()
        seen = set()
        for gateway_id in set(facts.online) | set(facts.heartbeats):
            if gateway_id in fleet.plant_of or gateway_id in fleet.retired:
                continue
            subject = GATEWAY_SUBJECT + gateway_id
            seen.add(subject)
            observation = condition.observe_gateways([gateway_id], rule, now, facts) if rule.enabled else None
            self._step(AlertKey(condition.kind, subject, None, gateway_id), rule, observation, inhibited=False, now=now)
        return seen

    def _end_orphans(self, kind: str, seen: set[str], fleet: Fleet, now: datetime) -> None:
        """Open episodes whose plant is gone, or whose gateway is bound or retired now, end."""
        rule = global_rule(fleet.rules, kind)
        for (record_kind, subject), record in list(self.records.items()):
            if record_kind != kind or subject in seen or not is_open(record):
                continue
            off = rule if rule is not None else _placeholder_rule(kind, now)
            self._step(AlertKey(kind, subject, record.service_code, record.gateway_id), replace(off, enabled=False),
                       None, inhibited=False, now=now)

    def _gateway_offline_firing(self) -> set[str]:
        return {subject for (kind, subject), r in self.records.items() if kind == "gateway_offline"
                and r.state == "firing"}

    def _step(self, key: AlertKey, rule: AlertRule, observation: Observation | None, *, inhibited: bool,
              now: datetime) -> None:
        record = self.records.get((key.kind, key.subject))
        if not is_open(record) and (observation is None or observation.holds is not True):
            return  # the common case: nothing open, nothing starting
        self._apply(key, record, step(record, rule, observation, key=key, inhibited=inhibited, now=now), now)

    def _apply(self, key: AlertKey, before: AlertRecord | None, result: Step, now: datetime) -> None:
        """Queue the step's change for this kind's transaction (`_flush`)."""
        record = result.record
        if result.decision == "none" or record is None:
            return
        if result.decision == "save":
            change = AlertChange("save", record, now)
        elif result.decision == "raise":
            params = dict(result.params)
            plant = self._fleet.by_code.get(key.service_code or "") if self._fleet is not None else None
            if plant is not None:  # texts show the plant's name with its code
                params.setdefault("plant_name", plant.plant.name)
            change = AlertChange("fire", record, now, english_message(key.kind, params, record), params)
        else:
            # The registry resolves the episode as it was (firing: its event recovers, journal "cleared").
            firing = before if before is not None else record
            lasted = {"duration_s": int((now - firing.firing_since).total_seconds())} if firing.firing_since else {}
            change = AlertChange("resolve", firing, now, params=lasted)
        self._changes.append((key, result.decision, change))

    def _flush(self) -> None:
        """Record the queued changes in one registry transaction; if it fails, none is kept in
        memory either, so the next evaluation decides them again."""
        changes, self._changes = self._changes, []
        if not changes:
            return
        try:
            saved = self.registry.apply_alert_changes([change for _, _, change in changes])
        except RegistryError as exc:
            for key, _, _ in changes:
                RULE_ERRORS.labels(key.kind).inc()
            log.error("alerts: %d episode changes not recorded, tried again next time: %s", len(changes), exc)
            return
        for (key, decision, change), record in zip(changes, saved, strict=True):
            if decision == "raise":
                log.warning("alerts: %s%s", change.message, " (flapping)" if record.flapping else "")
                EVENTS.labels(key.kind).inc()
            elif decision == "clear":
                log.info("alerts: %s at %s cleared", key.kind, key.subject)
                EVENTS.labels("gateway_recovered" if key.kind == "gateway_offline" else key.kind).inc()
            TRANSITIONS.labels(key.kind, decision).inc()
            self.records[(key.kind, key.subject)] = record

    def _prune(self, now: datetime) -> None:
        for key, record in list(self.records.items()):
            if not is_open(record) and (record.resolved_at is None or now - record.resolved_at >= FLAP_WINDOW):
                del self.records[key]

    def _count(self) -> None:
        tally = Tally((r.kind, r.state) for r in self.records.values() if is_open(r))
        for kind in {k for k, _ in tally} | {c.kind for c in self.conditions}:
            for state in ("pending", "firing"):
                EPISODES.labels(kind, state).set(tally.get((kind, state), 0))

    # --- running ----------------------------------------------------------------------------------

    @property
    def _reader(self) -> ContractReader:
        return ContractReader("alerts", UNKNOWN_FIELDS)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow(stop))
            # The notifier tells every journal happening (raised, cleared, acknowledged, info, whoever
            # recorded it) to the channels, and publishes it on pms/v1/events/{kind}.
            group.create_task(Notifier(self.settings, self.registry, self.clock).run(stop))

    async def _follow(self, stop: asyncio.Event) -> None:
        await follow_presence(
            name="alerts",
            broker=BrokerAddress.parse(self.settings.mqtt_url),
            client_id=self.settings.mqtt_client_id or "pms-alerts",
            health=self.health,
            stop=stop,
            on_transition=self.on_transition,
            on_message=self.on_message,
            tick_s=self.settings.tick_s,
            missed_heartbeats=self.settings.missed_heartbeats,
            bad_payload=lambda _topic, _reason: BAD_PAYLOADS.inc(),
            reader=self._reader,
            on_tick=self.on_tick,
            clock=self.clock,
            extra_topics=[(topics.ALL_UPDATE_STATES, 1)],
            on_other=self.on_update_state,
        )


def _placeholder_rule(kind: str, now: datetime) -> AlertRule:
    return AlertRule(rule_id=0, kind=kind, scope="global", scope_value=None, enabled=False, severity="warning",
                     raise_for_s=0, clear_for_s=0, params={}, updated_at=now, updated_by=None)
