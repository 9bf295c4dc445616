"""The pure core: records, states, transitions, naming and timing. Standard library only: no Google client,
no YAML or pydantic, no clock and no I/O (import-linter keeps it so)."""
