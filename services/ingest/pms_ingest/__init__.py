"""Ingest: the one writer of time series; validates readings, stores them, acks what is durable."""
