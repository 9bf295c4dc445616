"""BigQuery error reasons and the google.rpc codes that audit logs carry instead of them.

The jobs API reports `errorResult.reason` ("backendError"); BigQueryAuditMetadata
reports `jobStatus.errorResult` as a google.rpc.Status with a numeric `code`.
Both sides of Baton (the audit-log parser and the local audit-log bridge) use
this one table so they cannot drift apart.
"""

from __future__ import annotations

# google.rpc.Code -> the BigQuery reason Baton classifies retries by.
RPC_CODE_TO_REASON: dict[int, str] = {
    1: "stopped",  # CANCELLED
    2: "internalError",  # UNKNOWN
    3: "invalidQuery",  # INVALID_ARGUMENT
    4: "timeout",  # DEADLINE_EXCEEDED
    5: "notFound",  # NOT_FOUND
    6: "duplicate",  # ALREADY_EXISTS
    7: "accessDenied",  # PERMISSION_DENIED
    8: "rateLimitExceeded",  # RESOURCE_EXHAUSTED
    9: "invalid",  # FAILED_PRECONDITION
    10: "backendError",  # ABORTED
    11: "invalid",  # OUT_OF_RANGE
    12: "notImplemented",  # UNIMPLEMENTED
    13: "internalError",  # INTERNAL
    14: "backendError",  # UNAVAILABLE
    16: "accessDenied",  # UNAUTHENTICATED
}

# The reverse, for writing audit entries from a reason (first code wins).
REASON_TO_RPC_CODE: dict[str, int] = {
    "stopped": 1,
    "invalidQuery": 3,
    "invalid": 3,
    "timeout": 4,
    "notFound": 5,
    "duplicate": 6,
    "accessDenied": 7,
    "quotaExceeded": 8,
    "rateLimitExceeded": 8,
    "resourcesExceeded": 8,
    "internalError": 13,
    "jobInternalError": 13,
    "backendError": 14,
    "jobBackendError": 14,
    "notImplemented": 12,
}

# google.rpc codes that stand for more than one reason (RESOURCE_EXHAUSTED: rateLimitExceeded, quotaExceeded,
# resourcesExceeded): a reason read off one of them is a guess, and a job's retry policy may tell them apart.
AMBIGUOUS_CODES: frozenset[int] = frozenset(
    code for code in set(REASON_TO_RPC_CODE.values()) if sum(1 for c in REASON_TO_RPC_CODE.values() if c == code) > 1
)

RETRYABLE_REASONS: frozenset[str] = frozenset(
    {"backendError", "internalError", "rateLimitExceeded", "jobBackendError", "jobInternalError"}
)


# Refusals of a request (jobs.insert, jobs.get) that say "not now" rather than "never": 403 with one of
# these reasons, like 429 and 5xx, is retried with backoff; any other 4xx is final.
RATE_LIMIT_REASONS: frozenset[str] = frozenset({"rateLimitExceeded", "quotaExceeded"})


def reason_for_code(code: int) -> str:
    return RPC_CODE_TO_REASON.get(code, "internalError")


def code_for_reason(reason: str) -> int:
    return REASON_TO_RPC_CODE.get(reason, 13)
