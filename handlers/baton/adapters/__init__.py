"""Adapters behind the service's ports: Spanner, BigQuery and Pub/Sub. The only modules that call Google clients."""
