from prometheus_client import Counter, Histogram

BATCHES = Counter("pms_ingest_batches_total", "Reading batches stored and acked")
READINGS = Counter("pms_ingest_readings_total", "Readings stored", ["kind"])
DEADLETTERS = Counter("pms_ingest_deadletter_total", "Payloads rejected to the dead-letter topic", ["reason"])
STORE_ERRORS = Counter("pms_ingest_store_errors_total", "Writes the store refused (not acked, so resent)")
ANOMALIES = Counter("pms_ingest_register_anomalies_total", "Registers that went backwards or jumped")
WEATHER = Counter("pms_ingest_weather_total", "Weather observations stored")
WRITE_SECONDS = Histogram("pms_ingest_write_seconds", "Time to store one batch durably")
