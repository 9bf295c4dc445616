"""The run page from hand-built records: what it names, shows, links and escapes."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import replace
from typing import Any

from baton.domain.records import CheckRecord, CheckStatus, JobRecord, JobStats, JobStatus, RunRecord, RunStatus
from baton.domain.specs import BoundParam, JobSpec, RetrySpec, Severity
from baton_cli.report import console_url, render_run_page
from baton_cli.report.timeline import Phase, job_segments

T0 = dt.datetime(2031, 3, 14, 6, 15, tzinfo=dt.UTC)
RUN_ID = "0123456789abcdef0123456789abcdef"
GIB = 1024**3


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def spec(key: str, *needs: str, layer: str = "consume") -> JobSpec:
    return JobSpec(key=key, sql=f"SELECT '{key}' AS job", needs=tuple(needs), retry=RetrySpec(), labels={"layer": layer})


def job(key: str, status: JobStatus, *needs: str, start: float = 0, took: float = 5, **fields: Any) -> JobRecord:
    done = status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    values: dict[str, Any] = {
        "ready_at": at(start),
        "submitted_at": at(start + 0.5),
        "finished_at": at(start + took) if done else None,
        "stats": JobStats(
            total_bytes_processed=3 * 1024**3,
            total_bytes_billed=3 * 1024**3,
            total_slot_ms=90_000,
            start_time=at(start + 1),
            end_time=at(start + took - 0.2),
        )
        if done
        else None,
        "bigquery_job_id": f"baton_dev_{RUN_ID}_{key}_{fields.get('attempt', 1)}",
    }
    values.update(fields)
    return JobRecord(
        run_id=RUN_ID, job_key=key, status=status, pending_upstreams=0, spec=spec(key, *needs), **{"attempt": 1, **values}
    )


def check(key: str, name: str, severity: Severity, status: CheckStatus, rows: int, took: float) -> CheckRecord:
    job_id = f"baton_dev_{RUN_ID}_{key}_1-check-{name}"
    return CheckRecord(RUN_ID, key, 1, name, severity, status, job_id, rows=rows, created_at=at(3), finished_at=at(3 + took))


def run_record(status: RunStatus = RunStatus.FAILED, finished: float | None = 40) -> RunRecord:
    return RunRecord(
        run_id=RUN_ID,
        manifest_name="trusted_sales",
        manifest_version="v1abc",
        environment="dev",
        params={"run_date": BoundParam("DATE", "2031-03-14"), "full_refresh": BoundParam("BOOL", False)},
        status=status,
        total_jobs=4,
        open_jobs=0 if finished is not None else 2,
        succeeded_jobs=2,
        failed_jobs=1,
        skipped_jobs=1,
        created_at=T0,
        finished_at=at(finished) if finished is not None else None,
    )


SCRIPT_ERROR = "invalidQuery: Syntax error near <script>alert('x')</script> & friends"


def failed_run() -> tuple[RunRecord, list[JobRecord], list[CheckRecord]]:
    jobs = [
        job("land", JobStatus.SUCCEEDED, took=4),
        job("slow_hist", JobStatus.SUCCEEDED, "land", start=4, took=20),
        job("orders", JobStatus.FAILED, "land", start=4, took=6, attempt=2, error=SCRIPT_ERROR, error_reason="invalidQuery"),
        job(
            "revenue",
            JobStatus.SKIPPED,
            "orders",
            "slow_hist",
            ready_at=None,
            submitted_at=None,
            error="upstream 'orders' failed",
            finished_at=at(10),
        ),
    ]
    checks = [
        CheckRecord(
            RUN_ID,
            "land",
            1,
            "unique_id",
            Severity.ERROR,
            CheckStatus.FAILED,
            f"baton_dev_{RUN_ID}_land_1-check-unique_id",
            rows=2,
            created_at=at(3),
            finished_at=at(3.8),
        ),
        CheckRecord(
            RUN_ID,
            "land",
            1,
            "not_null_id",
            Severity.WARN,
            CheckStatus.PASSED,
            f"baton_dev_{RUN_ID}_land_1-check-not_null_id",
            rows=0,
            created_at=at(3),
            finished_at=at(3.7),
        ),
    ]
    return run_record(), jobs, checks


def render(
    run: RunRecord, jobs: list[JobRecord], checks: list[CheckRecord], now: dt.datetime | None = None, **options: Any
) -> str:
    return render_run_page(run, jobs, checks, now or at(60), project="shop-prod", location="EU", **options)


def test_the_page_names_every_job_with_its_status() -> None:
    page = render(*failed_run())
    for key, status in [("land", "SUCCEEDED"), ("slow_hist", "SUCCEEDED"), ("orders", "FAILED"), ("revenue", "SKIPPED")]:
        assert re.search(rf'<section class="job" id="job-{key}" data-status="{status}"', page), key
        assert f'data-job="{key}" data-status="{status}"' in page, f"{key} in the DAG"
        assert f'data-label="{key}"' in page, f"{key} on the timeline"
    assert 'id="run-status"' in page and ">FAILED</span>" in page


def test_a_job_error_is_escaped_not_executed() -> None:
    page = render(*failed_run())
    assert "<script>" not in page
    assert "Syntax error near &lt;script&gt;alert(" in page and "&lt;/script&gt; &amp; friends" in page


def test_every_bigquery_job_id_links_to_the_console_in_the_runs_project_and_location() -> None:
    page = render(*failed_run())
    url = console_url("shop-prod", "EU", f"baton_dev_{RUN_ID}_orders_2")
    assert (
        url
        == f"https://console.cloud.google.com/bigquery?project=shop-prod&j=bq%3AEU%3Abaton_dev_{RUN_ID}_orders_2&page=queryresults"
    )
    assert f'href="{html.escape(url)}"' in page
    # The first attempt of the retried job, and each check's own job.
    assert html.escape(console_url("shop-prod", "EU", f"baton_dev_{RUN_ID}_orders_1")) in page
    assert html.escape(console_url("shop-prod", "EU", f"baton_dev_{RUN_ID}_land_1-check-unique_id")) in page
    # Nothing of the skipped job reached BigQuery.
    assert f"baton_dev_{RUN_ID}_revenue_1" not in page


def test_without_a_project_job_ids_are_shown_unlinked() -> None:
    run, jobs, checks = failed_run()
    page = render_run_page(run, jobs, checks, at(60), project=None, location="US")
    assert f"baton_dev_{RUN_ID}_orders_2" in page
    assert "console.cloud.google.com" not in page


def test_the_critical_path_goes_through_the_slowest_upstream() -> None:
    page = render(*failed_run())
    # land (4 s) -> slow_hist (20 s); revenue never ran, so it adds nothing.
    assert "land → slow_hist" in page
    assert page.count('class="critical"') == 2, "two timeline rows are outlined"
    sections = {key: text for key, text in re.findall(r'<section class="job" id="job-(\w+)"(.*?)</section>', page, re.S)}
    assert {key for key, text in sections.items() if "on the critical path" in text} == {"land", "slow_hist"}


def test_a_retrying_jobs_error_is_shown_as_the_previous_attempts() -> None:
    _, jobs, checks = failed_run()
    live = run_record(RunStatus.RUNNING, finished=None)
    jobs[2] = job(
        "orders",
        JobStatus.READY,
        "land",
        start=12,
        attempt=2,
        error="rateLimitExceeded: slow down",
        error_reason="rateLimitExceeded",
    )
    page = render(live, jobs, checks, now=at(13))
    assert '<div class="note">attempt 1 failed, retrying: rateLimitExceeded: slow down</div>' in page


def test_check_results_show_offending_rows_and_severity() -> None:
    page = render(*failed_run())
    assert 'data-check="unique_id" data-status="FAILED"' in page
    assert "2 offending row(s)" in page
    assert 'data-check="not_null_id" data-status="PASSED"' in page


def test_sample_offending_rows_are_rendered_when_the_record_has_them() -> None:
    run, jobs, checks = failed_run()
    samples = [{"order_id": 200, "quantity": 9}, {"order_id": 200, "quantity": None}, {"order_id": "<b>", "note": "x"}]
    checks[0] = replace(checks[0], sample_rows=tuple(samples))
    page = render(run, jobs, checks)
    table = page[page.index('data-check="unique_id"') :]
    table = table[: table.index("</table>", table.index("samples"))]
    for text in ("order_id", "quantity", "note", ">200<", ">9<", ">NULL<", "&lt;b&gt;"):
        assert text in table, text


def test_stats_are_human_readable_and_totalled() -> None:
    page = render(*failed_run())
    assert "3.0 GiB" in page, "bytes per job"
    assert "1m30s" in page, "90,000 slot ms"
    assert "9.0 GiB processed" in page, "the run's total over its three jobs that reported"
    assert "2031-03-14 06:15:00 UTC" in page


def test_a_live_run_refreshes_and_shows_now_while_a_finished_one_does_not() -> None:
    _, jobs, checks = failed_run()
    live = run_record(RunStatus.RUNNING, finished=None)
    jobs[2] = job("orders", JobStatus.SUBMITTED, "land", start=4, attempt=1)
    page = render(live, jobs, checks, now=at(30), refresh_seconds=5)
    assert '<meta http-equiv="refresh" content="5">' in page
    assert "still RUNNING" in page and "now " in page
    finished = render(*failed_run(), refresh_seconds=5)
    assert "http-equiv" not in finished


def test_the_page_needs_no_network() -> None:
    page = render(*failed_run())
    external = set(re.findall(r'(?:src|href)="(https?://[^"]*)"', page))
    assert external and all(url.startswith("https://console.cloud.google.com/bigquery?") for url in external)
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_a_submitted_job_with_no_stats_yet_is_submitted_until_now() -> None:
    running = job("orders", JobStatus.SUBMITTED, start=0)
    segments = job_segments(running, at(10))
    assert [(s.phase, s.start, s.end, s.ongoing) for s in segments] == [
        (Phase.QUEUED, at(0), at(0.5), False),
        (Phase.SUBMITTED, at(0.5), at(10), True),
    ]


def test_bigquerys_start_before_baton_recorded_the_submission_means_it_never_waited_in_bigquery() -> None:
    checked = job(
        "orders", JobStatus.SUCCEEDED, start=0, took=9, checks_started_at=at(6),
        stats=JobStats(start_time=at(0.4), end_time=at(5.8)),
    )  # fmt: skip
    assert [(s.phase, s.start, s.end) for s in job_segments(checked, at(60))] == [
        (Phase.QUEUED, at(0), at(0.4)),
        (Phase.RUNNING, at(0.4), at(6)),
        (Phase.CHECKING, at(6), at(9)),
    ]


def test_statistics_left_from_an_earlier_attempt_do_not_place_the_current_one() -> None:
    retrying = job("orders", JobStatus.SUBMITTED, start=10, attempt=2, stats=JobStats(start_time=at(1), end_time=at(3)))
    assert [(s.phase, s.start, s.end) for s in job_segments(retrying, at(12))] == [
        (Phase.QUEUED, at(10), at(10.5)),
        (Phase.SUBMITTED, at(10.5), at(12)),
    ]


def test_an_earlier_attempt_without_checks_is_marked_as_maybe_never_submitted() -> None:
    run, jobs, checks = failed_run()
    jobs[0] = job("land", JobStatus.SUCCEEDED, took=4, attempt=3)  # its only checks are of attempt 1
    page = render(run, jobs, checks)
    section = page[page.index('id="job-land"') : page.index("</section>", page.index('id="job-land"'))]
    notes = re.findall(r"<dt>attempt (\d)</dt><dd>.*?</span>( <span class=\"muted\"[^>]*>\(if it was submitted)?", section)
    assert notes == [("3", ""), ("2", ' <span class="muted" style="font-size:12px">(if it was submitted'), ("1", "")]


def test_a_run_whose_rows_are_still_being_written_renders() -> None:
    creating = replace(run_record(RunStatus.CREATING, finished=None), created_at=None, total_jobs=0)
    page = render(creating, [], [], now=at(1))
    assert 'id="timeline"' in page and 'id="dag"' in page and "still CREATING" in page
    assert "critical path</dt>" not in page
