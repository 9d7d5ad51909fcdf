"""The collector's /api/v1 endpoints: devices, channels, power logs, series, energy, batch ingest (§4.2, §9)."""
