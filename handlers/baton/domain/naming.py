"""Names Baton gives things in BigQuery: job IDs and labels, and the patterns that keep them valid.

A completion event carries only the job ID and labels, so these are how an event
finds its job row by primary key (invariant 5), and how a resubmission stays the
same BigQuery job (invariant 2).
"""

from __future__ import annotations

import hashlib
import re
import secrets

LABEL_ENV, LABEL_RUN, LABEL_JOB, LABEL_ATTEMPT = "baton_env", "baton_run", "baton_job", "baton_attempt"
LABEL_CHECK = "baton_check"  # only on the BigQuery job of a data check
BATON_LABELS = (LABEL_ENV, LABEL_RUN, LABEL_JOB, LABEL_ATTEMPT)

# Each becomes a label value: lowercase, at most 63 characters. Always use them with `fullmatch`:
# `$` also matches before a final newline, so `match` would take "land_raw\n" for a job key.
JOB_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
CHECK_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
ENVIRONMENT_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")  # new_run_id(), or a backfill date's backfill_run_id()
ATTEMPT_PATTERN = re.compile(r"^[1-9][0-9]{0,8}$")
POOL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")  # the environment's pools (BATON_POOLS)


def new_run_id() -> str:
    """Random, so that Spanner spreads runs across splits instead of hotspotting one."""
    return secrets.token_hex(16)


def backfill_run_id(backfill_id: str, day: str) -> str:
    """The one run ID of a backfill's date (ISO): a start and the reconciler finishing that start can never write
    the same date twice (the second insert finds the run). Spread like `new_run_id`: a hash is as good as random."""
    return hashlib.sha256(f"{backfill_id}/{day}".encode()).hexdigest()[:32]


def bigquery_job_id(environment: str, run_id: str, job_key: str, attempt: int) -> str:
    """The one BigQuery job ID for (run, job, attempt): resubmitting is a harmless 409."""
    return f"baton_{environment}_{run_id}_{job_key}_{attempt}"


def baton_labels(environment: str, run_id: str, job_key: str, attempt: int) -> dict[str, str]:
    """Labels that route the completion back: the sink filters on env, the handler looks up the rest."""
    return {LABEL_ENV: environment, LABEL_RUN: run_id, LABEL_JOB: job_key, LABEL_ATTEMPT: str(attempt)}


def check_job_id(environment: str, run_id: str, job_key: str, attempt: int, check_name: str) -> str:
    """The one BigQuery job ID of a check. '-' never occurs in a job's own ID, so the two cannot collide."""
    return f"{bigquery_job_id(environment, run_id, job_key, attempt)}-check-{check_name}"


def check_labels(environment: str, run_id: str, job_key: str, attempt: int, check_name: str) -> dict[str, str]:
    return {**baton_labels(environment, run_id, job_key, attempt), LABEL_CHECK: check_name}
