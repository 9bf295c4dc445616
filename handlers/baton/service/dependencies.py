"""What every use case works with: the ports, the environment's name and a clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from baton.service.ports import EventPublisher, JobSubmitter, ManifestSource, NoEventPublisher, RunStore, WorkQueue


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Dependencies:
    store: RunStore
    submitter: JobSubmitter
    manifests: ManifestSource
    environment: str
    events: EventPublisher = field(default_factory=NoEventPublisher)
    clock: Callable[[], dt.datetime] = utc_now
    work: WorkQueue | None = None  # None: continuations run in-process (see service/continuations.py)
    # Where check queries write their offending rows (`dataset` or `project.dataset`, with a default table
    # expiration): a table any Baton function may read, unlike a query's anonymous result table, which only
    # the identity that ran the query can read. None: the anonymous table (one identity only).
    scratch_dataset: str | None = None
