"""Baton: event-driven orchestration of BigQuery jobs."""
