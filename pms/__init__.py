"""The `pms` command: the composition root that wires services and libs together."""
