"""The gateway agent: reads the meter, keeps a durable outbox, publishes readings until acked."""
