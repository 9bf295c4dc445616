"""Use cases: start, complete, cancel, retry, reconcile. They orchestrate the ports around the pure domain:
commit the state change first, then talk to BigQuery or Pub/Sub."""
