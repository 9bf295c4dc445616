"""The JSON documents the read commands print with `--json`: one shape per command, for scripts.

The shapes are documented in docs/cli.md and versioned by `schema_version`: a field may be
added within a version, never renamed, retyped or removed. Times are ISO 8601 in UTC,
durations are seconds, absent values are null (never left out), lists keep the table's order.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from baton.domain.cost import Pricing
from baton.domain.records import CatalogEntry, CheckRecord, JobRecord, PoolUsage, RunRecord
from baton.domain.transitions.hold import is_held
from baton.errors import Problem
from baton.manifests.model import Manifest
from baton.manifests.schedule import next_starts
from baton.service.backfills import BackfillProgress
from baton_cli.cost_view import job_usage
from baton_cli.deadletters import DeadLetter

SCHEMA_VERSION = 1

Document = dict[str, Any]


def dumps(document: Document) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def document(**body: Any) -> Document:
    return {"schema_version": SCHEMA_VERSION, **body}


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def run_object(run: RunRecord, now: dt.datetime, pricing: Pricing) -> Document:
    """`cost` is the run's metered usage and its price, the same object run.succeeded/failed/cancelled carry."""
    end = run.finished_at or (None if run.status.terminal else now)
    return {
        "run_id": run.run_id,
        "manifest": run.manifest_name,
        "manifest_version": run.manifest_version,
        "environment": run.environment,
        "status": str(run.status),
        "params": {name: bound.value for name, bound in sorted(run.params.items())},
        "jobs": {
            "total": run.total_jobs,
            "succeeded": run.succeeded_jobs,
            "failed": run.failed_jobs,
            "skipped": run.skipped_jobs,
            "cancelled": run.cancelled_jobs,
            "open": run.open_jobs,
        },
        "created_at": _time(run.created_at),
        "finished_at": _time(run.finished_at),
        "duration_seconds": _seconds(run.created_at, end),
        "cost": pricing.to_json(run.usage),
        "started_at": _time(run.started_at),
        "queue": run.queue,
        "backfill_id": run.backfill_id,
        # `baton hold`: {at, reason} while the run is held, else null.
        "held": {"at": _time(run.held_at), "reason": run.hold_reason} if is_held(run) else None,
        "timeout_seconds": run.timeout_seconds,  # the manifest's run_timeout, or null
        "deadline": _time(run.deadline),
        "end_reason": run.end_reason,  # why a rule ended it (a timeout), or null
    }


def backfill_object(progress: BackfillProgress) -> Document:
    """A backfill and its runs per status (`runs` counts every RunStatus, 0 when none)."""
    backfill = progress.backfill
    return {
        "backfill_id": backfill.backfill_id,
        "manifest": backfill.manifest_name,
        "param": backfill.param,
        "from": backfill.first_date.isoformat(),
        "to": backfill.last_date.isoformat(),
        "max_active_runs": backfill.max_active_runs,
        "select": backfill.select,
        "exclude": backfill.exclude,
        "status": str(backfill.status),
        "total_runs": backfill.total_runs,
        "starting": backfill.starting,  # not every date's run written yet (the reconciler finishes a stopped start)
        "runs": progress.counts(),
        "created_at": _time(backfill.created_at),
        "finished_at": _time(backfill.finished_at),
    }


def backfills_document(found: Iterable[BackfillProgress]) -> Document:
    return document(backfills=[backfill_object(progress) for progress in found])


def backfill_status_document(progress: BackfillProgress) -> Document:
    """`baton status BACKFILL_ID --json`: the backfill, and each date's run in date order."""
    dates = [
        {
            "date": progress.date_of(run),
            "run_id": run.run_id,
            "status": str(run.status),
            "started_at": _time(run.started_at),
            "finished_at": _time(run.finished_at),
            "duration_seconds": _seconds(run.started_at, run.finished_at),
            "jobs": {"total": run.total_jobs, "succeeded": run.succeeded_jobs, "failed": run.failed_jobs},
        }
        for run in progress.runs
    ]
    return document(backfill=backfill_object(progress), dates=dates)


def runs_document(runs: Iterable[RunRecord], now: dt.datetime, pricing: Pricing) -> Document:
    return document(runs=[run_object(run, now, pricing) for run in runs])


def _check_object(check: CheckRecord) -> Document:
    return {
        "name": check.name,
        "severity": str(check.severity),
        "status": str(check.status),
        "rows": check.rows,
        "error": check.error,
        "bigquery_job_id": check.bigquery_job_id,
        "sample_rows": None if check.sample_rows is None else [dict(row) for row in check.sample_rows],
    }


def _job_object(job: JobRecord, bigquery_job_id: str | None, checks: Sequence[CheckRecord], pricing: Pricing) -> Document:
    """`cost`: the job's last attempt and its checks, priced; null when BigQuery reported nothing for them."""
    stats = job.stats
    usage = job_usage(job, checks)
    return {
        "key": job.job_key,
        "status": str(job.status),
        "attempt": job.attempt,
        "needs": list(job.spec.needs),
        "pool": job.spec.pool,
        "priority": job.spec.priority,
        "destination": job.spec.destination,
        "bigquery_job_id": bigquery_job_id,
        "submitted_at": _time(job.submitted_at),
        "finished_at": _time(job.finished_at),
        "bigquery_seconds": _seconds(stats.start_time, stats.end_time) if stats is not None else None,
        "error": job.error,
        "error_reason": job.error_reason,
        "reused_from": job.reused_from,
        "checks": [_check_object(check) for check in checks],
        "cost": None if usage is None else pricing.to_json(usage),
    }


def status_document(
    run: RunRecord,
    jobs: Sequence[JobRecord],
    bigquery_job_ids: Mapping[str, str | None],
    checks: Mapping[str, Sequence[CheckRecord]] | None,
    now: dt.datetime,
    pricing: Pricing,
) -> Document:
    return document(
        run=run_object(run, now, pricing),
        jobs=[_job_object(job, bigquery_job_ids.get(job.job_key), (checks or {}).get(job.job_key, ()), pricing) for job in jobs],
    )


def pools_document(pools: Iterable[tuple[PoolUsage, int]]) -> Document:
    return document(
        pools=[{"pool": pool.name, "size": pool.size, "in_use": pool.in_use, "queued": queued} for pool, queued in pools]
    )


def catalog_document(entries: Iterable[CatalogEntry]) -> Document:
    return document(
        tables=[
            {
                "table": entry.table_ref,
                "run_id": entry.run_id,
                "job_key": entry.job_key,
                "bigquery_job_id": entry.bigquery_job_id,
                "written_at": _time(entry.written_at),
                "rows_affected": entry.rows_affected,
                "bytes_processed": entry.bytes_processed,
                "table_rows": entry.table_rows,
                "table_bytes": entry.table_bytes,
                "upstream_tables": list(entry.upstream_tables),
            }
            for entry in entries
        ]
    )


def dead_letters_document(subscription: str, letters: Iterable[DeadLetter]) -> Document:
    return document(
        subscription=subscription,
        dead_letters=[
            {
                "message_id": letter.message_id,
                "publish_time": _time(letter.publish_time),
                "delivery_count": letter.delivery_count,
                "summary": letter.summary,
                "reason": letter.reason,
                "payload_kind": letter.payload_kind,
                "attributes": dict(letter.attributes),
                "data_base64": base64.b64encode(letter.data).decode("ascii"),
            }
            for letter in letters
        ],
    )


def schedule_object(manifest: Manifest, now: dt.datetime) -> Document | None:
    """The cron, its time zone and the next three starts, local and UTC; None for an unscheduled manifest."""
    if manifest.schedule is None:
        return None
    starts = next_starts(manifest.schedule, manifest.time_zone, now)
    return {
        "cron": manifest.schedule,
        "time_zone": manifest.time_zone,
        "next_starts": [{"local": start.isoformat(), "utc": _time(start)} for start in starts],
    }


def valid_manifest(target: str, manifest: Manifest, now: dt.datetime, warnings: Sequence[str] = ()) -> Document:
    return {
        "target": target,
        "file": manifest.source,
        "name": manifest.name,
        "valid": True,
        "version": manifest.version,
        "jobs": len(manifest.jobs),
        "schedule": schedule_object(manifest, now),
        "problems": [],
        "warnings": list(warnings),
    }


def invalid_manifest(target: str, file: str | None, problems: Sequence[Problem]) -> Document:
    return {
        "target": target,
        "file": file,
        "name": None,
        "valid": False,
        "version": None,
        "jobs": None,
        "schedule": None,
        "problems": [
            {"line": str(problem), "job": problem.job, "check": problem.check, "message": problem.message} for problem in problems
        ],
    }


def validation_document(results: Sequence[Document]) -> Document:
    return document(valid=all(result["valid"] for result in results), manifests=list(results))
