"""Entry points' edges: decode requests (push body, CloudEvent, audit LogEntry, start and reconcile bodies)
and map outcomes to HTTP statuses. Nothing here decides; the service does."""
