"""The local stack: real emulators, a BigQuery façade and an audit-log bridge, for tests and the demo."""
