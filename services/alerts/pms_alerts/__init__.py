"""Alerts: turns gateway presence into events (gateway offline / recovered) in the registry and on MQTT."""
