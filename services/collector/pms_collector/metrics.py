from prometheus_client import Counter, Gauge

READINGS = Counter("pms_collector_readings_total", "Readings taken from the meter", ["kind"])
READ_ERRORS = Counter("pms_collector_read_errors_total", "Meter reads that failed")
SLOTS_BACKFILLED = Counter("pms_collector_slots_backfilled_total", "Slots refilled from the E2/E4 history")
SLOTS_UNRECOVERABLE = Counter("pms_collector_slots_unrecoverable_total",
                              "Missing slots the meter no longer holds (older than 99 days, or no data)")
HISTORY_REFUSED = Gauge("pms_collector_meter_history_refused",
                        "1 once the meter refused its E2/E4 history: gaps are counted lost, not refilled")
SLOT_SOURCE = Counter("pms_collector_slot_reads_total", "Live slot registers by source", ["source"])
BATCHES_PUBLISHED = Counter("pms_collector_batches_published_total", "Batches published (first sends)")
BATCHES_RESENT = Counter("pms_collector_batches_resent_total", "Batches published again after no ack")
UNKNOWN_FIELDS = Counter("pms_collector_unknown_fields_total",
                         "Messages read with fields this version does not know (ignored)", ["message"])
BATCHES_ACKED = Counter("pms_collector_batches_acked_total", "Batches deleted from the outbox after an ack")
THINNED = Counter("pms_collector_thinned_batches_total", "Power-only batches emptied because the outbox was full")
DROPPED_ENERGY = Counter("pms_collector_dropped_energy_batches_total",
                         "Energy batches emptied because the outbox was full of them")
OUTBOX_DEPTH = Gauge("pms_collector_outbox_depth", "Batches in the outbox waiting for an ack", ["gateway_id"])
SUBSCRIPTIONS_REFUSED = Counter("pms_collector_subscriptions_refused_total",
                                "SUBACKs that refused a subscription (the gateway then connects again)")
CONNECTED = Gauge("pms_collector_broker_connected", "1 while connected to the broker", ["gateway_id"])
LINK_READY = Gauge("pms_collector_link_ready", "1 while the B-route session is joined", ["gateway_id"])
REGISTER_KWH = Gauge("pms_collector_register_kwh", "Cumulative registers E0/E3 at the last read", ["direction"])
COMMANDS = Counter("pms_collector_commands_total", "Remote commands handled", ["command", "outcome"])
CONFIG_APPLIED = Counter("pms_collector_config_applied_total", "Desired configurations applied")
METER_SCALE_VALID = Gauge("pms_collector_meter_scale_valid",
                          "1 while the meter's D3/E1/D7 are valid, 0 while refused (no energy is read)", ["gateway_id"])
METER_CLOCK_SKEW = Gauge("pms_collector_meter_clock_skew_seconds",
                         "The meter's clock minus the gateway's at the last check (+ = ahead)", ["gateway_id"])
METER_CLOCK_JUMPS = Counter("pms_collector_meter_clock_jumps_total",
                            "Meter clock readings that jumped away from the model, by what became of them",
                            ["outcome"])
SLOT_STAMPS_REFUSED = Counter("pms_collector_slot_stamps_refused_total",
                              "EA/EB readings not stored because their stamp names no single slot")
SLOTS_BEFORE_HISTORY = Counter("pms_collector_slots_before_history_total",
                               "Slots of a first start's history walk that predate the meter's history (not lost)")
BACKFILL_FAILURES = Counter("pms_collector_backfill_failures_total",
                            "Backfill attempts that failed (and wait on their own backoff)", ["reason"])
HISTORY_CONFLICTS = Counter("pms_collector_history_conflicts_total",
                            "Slots whose E2/E4 history disagreed with the registers read live (the live value stands)")
BACKFILL_PENDING_DAYS = Gauge("pms_collector_backfill_pending_days", "Meter days the backfill still has to read",
                              ["gateway_id"])
UPDATE_STATES = Counter("pms_collector_update_states_total", "Software update states reported", ["state"])
UPDATE_REFUSALS = Counter("pms_collector_update_refusals_total",
                          "Update jobs not carried through, by reason (bad_signature, digest_mismatch, unhealthy, ...)",
                          ["code"])
