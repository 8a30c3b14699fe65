"""The operator dashboard: the gateways' events and telemetry ingested into the results store (ingest), the
views computed from it (views, cost), and the pages served beside the results API (web, static/)."""
