"""Manifests at the edge: YAML -> pydantic schema -> validated domain specs. Nothing past here sees YAML."""
