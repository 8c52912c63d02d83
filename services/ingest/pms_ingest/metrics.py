from prometheus_client import Counter, Gauge, Histogram

BATCHES = Counter("pms_ingest_batches_total", "Reading batches stored and acked")
READINGS = Counter("pms_ingest_readings_total", "Readings stored", ["kind"])
DEADLETTERS = Counter("pms_ingest_deadletter_total", "Payloads rejected to the dead-letter topic", ["reason"])
ACKS_NOT_CONFIRMED = Counter(
    "pms_ingest_acks_not_confirmed_total",
    "Acks whose publish failed or got no PUBACK within the client's timeout (the gateway resends: no data lost)")
STORE_ERRORS = Counter("pms_ingest_store_errors_total", "Writes the store refused (not acked, so resent)")
ANOMALIES = Counter("pms_ingest_register_anomalies_total", "Registers that went backwards or jumped")
UNKNOWN_FIELDS = Counter("pms_ingest_unknown_fields_total",
                         "Messages read with fields this version does not know (ignored)", ["message"])
WEATHER = Counter("pms_ingest_weather_total", "Weather observations stored")
EXPECTED_SLOTS = Counter("pms_ingest_expected_slots_total", "Expected-yield slots stored")
WRITE_SECONDS = Histogram(
    "pms_ingest_write_seconds", "Time of one durable write (one flush of many batches)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FLUSH_BATCHES = Histogram(
    "pms_ingest_flush_batches", "Batches written together in one durable write",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
FLUSH_READINGS = Histogram(
    "pms_ingest_flush_readings", "Readings written together in one durable write",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
)
LAG_SECONDS = Histogram(
    "pms_ingest_lag_seconds", "From receiving a batch to its durable write (the ack follows at once)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PENDING_READINGS = Gauge("pms_ingest_pending_readings", "Readings received and not yet written")
REDELIVERED = Counter("pms_ingest_jetstream_redelivered_total",
                      "JetStream messages delivered again (a replica died or was slow to ack): stored idempotently")
