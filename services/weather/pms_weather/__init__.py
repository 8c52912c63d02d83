"""Weather: per-plant irradiance, published to pms/v1/plants/{service_code}/weather."""
