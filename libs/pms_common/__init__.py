"""Shared code of every PMS service: the MQTT contract, settings, MQTT and metrics helpers, time rules."""
