from prometheus_client import Counter, Gauge

READINGS = Counter("pms_collector_readings_total", "Readings taken from the meter", ["kind"])
READ_ERRORS = Counter("pms_collector_read_errors_total", "Meter reads that failed")
BATCHES_PUBLISHED = Counter("pms_collector_batches_published_total", "Batches published (first sends)")
BATCHES_RESENT = Counter("pms_collector_batches_resent_total", "Batches published again after no ack")
BATCHES_ACKED = Counter("pms_collector_batches_acked_total", "Batches deleted from the outbox after an ack")
THINNED = Counter("pms_collector_thinned_batches_total", "Power-only batches emptied because the outbox was full")
OUTBOX_DEPTH = Gauge("pms_collector_outbox_depth", "Batches in the outbox waiting for an ack", ["gateway_id"])
CONNECTED = Gauge("pms_collector_broker_connected", "1 while connected to the broker", ["gateway_id"])
