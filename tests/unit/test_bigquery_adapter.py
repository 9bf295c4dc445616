"""The BigQuery adapter's reading of what Google's client raises: try again later, or never."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc

from baton.adapters.bigquery import BigQuerySubmitter
from baton.errors import JobRefused, TransientError
from baton.service.ports import SubmitOutcome, SubmitRequest

REQUEST = SubmitRequest(job_id="baton_dev_r_a_1", sql="SELECT 1", labels={"baton_env": "dev"})


class RaisingClient:
    """Stands in for bigquery.Client: every call raises what the real one raises for that HTTP answer."""

    project = "baton-local"

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def query(self, sql: str, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error

    def get_job(self, job_id: str, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error

    def cancel_job(self, job_id: str, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error


def submitter(error: Exception | None) -> BigQuerySubmitter:
    return BigQuerySubmitter(RaisingClient(error), "US")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        gexc.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]),
        gexc.Forbidden("Quota exceeded", errors=[{"reason": "quotaExceeded"}]),
        gexc.TooManyRequests("slow down"),
        gexc.ServiceUnavailable("backend"),
        gexc.InternalServerError("oops"),
    ],
    ids=["403 rateLimitExceeded", "403 quotaExceeded", "429", "503", "500"],
)
def test_rate_quota_and_server_errors_on_insert_are_transient(error: Exception) -> None:
    with pytest.raises(TransientError):
        submitter(error).submit(REQUEST)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (gexc.BadRequest("Invalid table name", errors=[{"reason": "invalid"}]), "invalid"),
        (gexc.NotFound("Not found: Dataset p:sales", errors=[{"reason": "notFound"}]), "notFound"),
        (gexc.Forbidden("Access Denied: Table", errors=[{"reason": "accessDenied"}]), "accessDenied"),
        (gexc.Forbidden("no reason given"), "accessDenied"),
    ],
    ids=["400 invalid", "404 notFound", "403 accessDenied", "403 without reason"],
)
def test_other_4xx_on_insert_refuse_the_job_with_its_reason(error: Exception, reason: str) -> None:
    with pytest.raises(JobRefused) as refused:
        submitter(error).submit(REQUEST)
    assert (refused.value.job_id, refused.value.reason) == (REQUEST.job_id, reason)


def test_a_409_means_an_earlier_insert_got_there() -> None:
    assert submitter(gexc.Conflict("Already Exists")).submit(REQUEST) == SubmitOutcome.ALREADY_EXISTS


def test_a_rate_limited_lookup_is_transient() -> None:
    with pytest.raises(TransientError):
        submitter(gexc.Forbidden("Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}])).lookup("x")


def test_every_call_carries_a_retry_deadline_and_a_timeout_within_the_budget() -> None:
    from baton.domain.timing import TimeBudget

    budget = TimeBudget(function_timeout_s=60)
    client = RaisingClient(gexc.NotFound("no such job"))
    adapter = BigQuerySubmitter(client, "US", budget)  # type: ignore[arg-type]
    client.error = None
    adapter.submit(REQUEST)
    client.error = gexc.NotFound("no such job")
    assert adapter.lookup("x") is None
    adapter.cancel("x")
    assert len(client.calls) == 3  # jobs.insert, jobs.get, jobs.cancel
    for call in client.calls:
        assert call["timeout"] == budget.request_timeout_s
        assert call["retry"]._timeout == budget.call_deadline_s, "not the client's 600 s DEFAULT_RETRY"
