"""BigQuery's report of a finished job -> the completion Baton applies, whichever way the report came.

The audit-log entry (event path) and `jobs.get` (the reconciler's healing path)
describe the same finished job in different shapes; each decoder reads its shape,
and this one function turns what they read into the same completion, so both paths
decide a check's verdict by the same rule.
"""

from __future__ import annotations

from baton.domain.records import CheckCompletion, Completion, JobError, JobStats

UNKNOWN_RESULT = "unknownResult"  # a check whose row count BigQuery did not report: never a pass


def completion_of(
    run_id: str,
    job_key: str,
    attempt: int,
    bigquery_job_id: str,
    *,
    check_name: str | None,
    error: JobError | None,
    stats: JobStats,
    output_rows: int | None = None,
) -> Completion | CheckCompletion:
    """A job's completion, or a check's: a check passes only on proof that its query returned no rows."""
    if check_name is None:
        return Completion(run_id, job_key, attempt, bigquery_job_id, error=error, stats=stats)
    if error is None and output_rows is None:
        error = JobError(UNKNOWN_RESULT, "BigQuery did not report how many rows the check returned")
    return CheckCompletion(run_id, job_key, attempt, check_name, bigquery_job_id, output_rows, error, stats)
