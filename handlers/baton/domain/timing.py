"""When Baton acts on a job by time alone: the resubmit lease, backoff, the reconciler's schedule, and
the time budget of one function invocation.

Event delivery and the reconciler both hand out READY jobs that nobody seems to
be submitting; they share `awaiting_submission`, so the two cannot disagree on
how long a handler that released a job is given to submit it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from baton.domain.records import JobRecord, JobStatus

# A released job is left to the handler that released it this long; after that, a redelivered event
# or the reconciler submits it again (a harmless 409 if the first submission made it after all).
# Shorter than Pub/Sub's minimum retry backoff (10 s, the push subscription's): when the releasing
# handler's jobs.insert fails and it answers 503, the first redelivery comes at least 10 s after the
# release, finds the lease over and submits what the first delivery released. With a lease longer than
# the backoff, that redelivery found the job still leased, acknowledged, and left it to the reconciler.
# A shorter lease costs at most a second insert of a slow handler's job, answered 409.
RESUBMIT_AFTER = dt.timedelta(seconds=8)
# Submission reads its run once before a batch of jobs.insert (service/submission_gate.py) and again before
# the next insert once that read is this old, so a cancel or a hold stops a batch of slow inserts within
# about this long; a batch of quick inserts costs one read.
SUBMIT_RECHECK_AFTER = dt.timedelta(seconds=1)
PUBSUB_MINIMUM_BACKOFF_S = 10.0  # the push subscription's (cdk/config.py PushDelivery.minimum_backoff_seconds)


def lease_expired(since: dt.datetime | None, now: dt.datetime, lease: dt.timedelta = RESUBMIT_AFTER) -> bool:
    """Whoever started something at `since` has had `lease` to finish it (unknown start: yes)."""
    return since is None or now - since >= lease


def due(job: JobRecord, now: dt.datetime) -> bool:
    """Its retry backoff, if any, is over."""
    return job.not_before is None or job.not_before <= now


def awaiting_submission(job: JobRecord, now: dt.datetime, lease: dt.timedelta = RESUBMIT_AFTER) -> bool:
    """A READY job that nobody is submitting: its backoff is over, or it was released over `lease` ago.

    Sooner than `lease`, the handler that released it may still be submitting it; a
    second insert would only be a 409, so a short lease costs calls, never correctness.
    A job whose backoff just ended is nobody's: only the reconciler submits those.
    """
    if job.status != JobStatus.READY or not due(job, now):
        return False
    return job.not_before is not None or lease_expired(job.ready_at, now, lease)


@dataclass(frozen=True)
class ReconcilePolicy:
    """How the periodic reconciler looks for what events did not deliver (config.py reads overrides)."""

    interval: dt.timedelta = dt.timedelta(minutes=5)  # how often the scheduler calls it
    lost_after: dt.timedelta = dt.timedelta(minutes=5)  # a submitted job is first checked this long after submission
    resubmit_after: dt.timedelta = RESUBMIT_AFTER  # a READY job this old is taken for one a crash left unsubmitted
    stalled_after: dt.timedelta = dt.timedelta(minutes=15)  # a RUNNING run this old with nothing in flight is repaired
    # A run CREATING this long lost its starter; a backfill this old still writing its dates' runs stopped.
    abandon_creating_after: dt.timedelta = dt.timedelta(minutes=15)
    batch: int = 500  # rows per page, and BigQuery lookups per invocation
    max_pages: int = 10  # pages per status per invocation: bounded work


def due_for_check(age: dt.timedelta, policy: ReconcilePolicy) -> bool:
    """Check a running job when its age crosses lost_after x 2^k since the previous pass.

    So a job that runs for T is looked up O(log T) times: the reconciler's cost does
    not grow with how long jobs run.
    """
    if age < policy.lost_after:
        return False
    previous = age - policy.interval
    if previous < policy.lost_after:
        return True
    checkpoint = policy.lost_after
    while checkpoint <= previous:
        checkpoint *= 2
    return checkpoint <= age


# --- the time budget of one invocation (docs/failure-model.md, "The time budget") -----------------

# The push subscription's ack deadline, which is also its request timeout (cdk/config.py PushConfig):
# a function still working when it passes is redelivered while it runs.
ACK_DEADLINE_S = 180.0
# The function's timeout when the stack does not say (BATON_FUNCTION_TIMEOUT_S): the completion function's
# (cdk/config.py EnvironmentConfig.completion_timeout_seconds), below the ack deadline.
DEFAULT_FUNCTION_TIMEOUT_S = 120.0
# Google calls the completion path makes one after another: its transaction, a jobs.insert, a publish.
CALLS_IN_SEQUENCE = 3
# Tries of one request a call's deadline leaves room for.
TRIES_PER_CALL = 3


@dataclass(frozen=True)
class TimeBudget:
    """Every Google client call's retry deadline and per-request timeout, derived from the function's timeout.

    The client libraries' defaults (BigQuery's DEFAULT_RETRY: 600 s; Spanner's
    run_in_transaction: 30 s of abort retries, per call) know nothing of the function
    around them: a call still retrying when the function is killed never reaches the
    503 that tells Pub/Sub to redeliver. Here a call gets a quarter of the function's
    time, so the completion path's three calls in sequence leave a quarter in reserve
    for answering, and each request a third of its call's deadline, so a call can try
    three times before it gives up as a TransientError.
    """

    function_timeout_s: float = DEFAULT_FUNCTION_TIMEOUT_S

    @property
    def call_deadline_s(self) -> float:
        """How long one call may take, retries included."""
        return self.function_timeout_s / (CALLS_IN_SEQUENCE + 1)

    @property
    def request_timeout_s(self) -> float:
        """How long one request of a call may take."""
        return self.call_deadline_s / TRIES_PER_CALL

    @property
    def reserve_s(self) -> float:
        """What is left after the calls in sequence have all used their whole deadline."""
        return self.function_timeout_s - CALLS_IN_SEQUENCE * self.call_deadline_s


# error_reason of a job failed for running past its manifest `timeout:` (BigQuery's own word for a deadline
# it enforced; not retryable by default, so a job that hangs does not hang again).
TIMEOUT_REASON = "timeout"
