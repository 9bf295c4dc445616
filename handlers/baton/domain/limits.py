"""How big a manifest Baton runs, and how much work one invocation takes on (invariant 9).

Manifests are validated against the first three; the service and the store use the
rest, so that no transaction and no invocation grows with the manifest.
"""

from __future__ import annotations

MUTATION_LIMIT = 80_000  # Spanner's mutations per commit, index entries included (cloud-limits.md)
MAX_JOBS = 10_000  # jobs in one manifest
MAX_FAN_OUT = 10_000  # dependents of one job
MAX_FAN_IN = 10_000  # upstreams of one job
NEAR_LIMIT = 0.8  # `baton manifest validate` warns from this share of a limit on

# Jobs one invocation submits itself after a commit; beyond it, the rest is handed on in batches of
# SUBMIT_BATCH by message, so a 10,000-wide release finishes without any invocation running long.
SUBMIT_INLINE = 50
SUBMIT_BATCH = 50

# QUEUED jobs one transaction hands freed slots to (a cancel frees many at once; a config change may add room).
# Slots left free beyond it go to the next completion of the pool, or to the reconciler's pass.
POOL_RELEASES_PER_COMMIT = 20
