"""Telling people about happenings: webhooks (signed), e-mail (SMTP), and the MQTT event topics.

Sans-IO parts: `signing` (webhook headers and the receivers' check), `backoff` (when to retry, when
to give up), `grouping` (when a channel's queued happenings go out together), `mail` (subject and
text). Adapters: `smtp` (smtplib in a thread), `webhook` (httpx), `dispatcher` (journal → queue →
deliveries → senders), `mqtt_publisher` (journal → `pms/v1/events/{kind}`), and `notifier` (the one
entry point the alerts service runs)."""
