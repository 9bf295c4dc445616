"""The largest manifest Baton runs (domain/limits.py): refused beyond, warned near."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from baton.domain.limits import MAX_FAN_IN, MAX_FAN_OUT, MAX_JOBS, NEAR_LIMIT
from baton.domain.specs import JobSpec
from baton.errors import Problem


def _sizes(jobs: Sequence[JobSpec]) -> tuple[int, tuple[str, int], tuple[str, int]]:
    """Jobs, the widest fan-out (job, dependents) and the widest fan-in (job, upstreams)."""
    fan_out = Counter(upstream for job in jobs for upstream in job.needs)
    widest_out = fan_out.most_common(1)[0] if fan_out else ("-", 0)
    widest_in = max(((job.key, len(job.needs)) for job in jobs), key=lambda pair: pair[1], default=("-", 0))
    return len(jobs), widest_out, widest_in


def limit_problems(jobs: Sequence[JobSpec]) -> list[Problem]:
    """One line per limit a manifest passes: each Spanner commit and each invocation is sized for these."""
    count, (out_key, out_degree), (in_key, in_degree) = _sizes(jobs)
    problems = []
    if count > MAX_JOBS:
        problems.append(Problem(f"jobs: {count} jobs; Baton runs at most {MAX_JOBS} per manifest (split it into several)"))
    if out_degree > MAX_FAN_OUT:
        problems.append(Problem(f"{out_degree} jobs need it; at most {MAX_FAN_OUT} may (fan-out)", out_key))
    if in_degree > MAX_FAN_IN:
        problems.append(Problem(f"needs {in_degree} jobs; at most {MAX_FAN_IN} (fan-in)", in_key))
    return problems


def near_limits(jobs: Sequence[JobSpec]) -> list[str]:
    """Warnings for a valid manifest at NEAR_LIMIT or more of a limit, so it is split before it is refused."""
    count, (out_key, out_degree), (in_key, in_degree) = _sizes(jobs)
    warnings = []
    for value, limit, what in (
        (count, MAX_JOBS, "jobs in the manifest"),
        (out_degree, MAX_FAN_OUT, f"jobs need '{out_key}' (fan-out)"),
        (in_degree, MAX_FAN_IN, f"upstreams of '{in_key}' (fan-in)"),
    ):
        if NEAR_LIMIT * limit <= value <= limit:
            warnings.append(f"{value} {what}: {value / limit:.0%} of the limit of {limit}")
    return warnings
