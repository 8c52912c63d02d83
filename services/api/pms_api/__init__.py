"""The REST API (/api/v1, OpenAPI at /openapi.json) and the operator console."""
