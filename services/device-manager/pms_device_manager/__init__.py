"""Device-manager: the fleet's state (status, heartbeat, last seen) in the registry."""
