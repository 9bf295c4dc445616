"""One exception per failure mode. Entry points map these to statuses; nothing else should."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class BatonError(Exception):
    """Base of every error Baton raises on purpose."""


class ManifestNotFound(BatonError):
    """No manifest of that name is deployed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"manifest '{name}' not found")
        self.name = name


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a manifest: the job and check it concerns (when it does) and what is wrong.

    Its text is the line a data engineer reads; the fields are what a script reads (`--json`).
    """

    message: str
    job: str | None = None
    check: str | None = None

    def __str__(self) -> str:
        job = f"job '{self.job}': " if self.job is not None else ""
        check = f"check '{self.check}': " if self.check is not None else ""
        return f"{job}{check}{self.message}"


class ManifestInvalid(BatonError):
    """A manifest failed validation; `problems` holds one line per problem, `details` the same as `Problem`s."""

    def __init__(self, where: str, problems: Sequence[str | Problem]) -> None:
        self.where = where
        self.details = [problem if isinstance(problem, Problem) else Problem(problem) for problem in problems]
        self.problems = [str(problem) for problem in self.details]
        super().__init__("\n".join(f"{where}: {problem}" for problem in self.problems))


class InvalidParams(BatonError):
    """Run params do not match the manifest's declarations."""

    def __init__(self, manifest: str, problems: Sequence[str]) -> None:
        self.manifest = manifest
        self.problems = list(problems)
        super().__init__("; ".join(f"{manifest}: {problem}" for problem in self.problems))


class InvalidSelection(BatonError):
    """A --select or --exclude spec is malformed, names no job, or leaves nothing to run."""

    def __init__(self, manifest: str, problem: str) -> None:
        super().__init__(f"{manifest}: {problem}")
        self.manifest = manifest
        self.problem = problem


class ManifestPaused(BatonError):
    """An operator paused the manifest (`baton pause`): it starts no run until resumed."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"manifest '{name}' is paused ({reason or 'no reason given'}); `baton resume {name}` starts it again")
        self.name = name
        self.reason = reason


class RunInProgress(BatonError):
    """A manifest with `concurrency: skip` was started while a run of it is RUNNING: nothing was started."""

    def __init__(self, name: str, running: str) -> None:
        super().__init__(f"manifest '{name}' has run {running} in progress and `concurrency: skip`; nothing was started")
        self.name = name
        self.running = running


class InvalidBackfill(BatonError):
    """A backfill's range, param or limit cannot work; the message says which and why. Nothing was written."""

    def __init__(self, manifest: str, problem: str) -> None:
        super().__init__(f"{manifest}: backfill: {problem}")
        self.manifest = manifest
        self.problem = problem


class BackfillNotFound(BatonError):
    """No backfill with that ID exists."""

    def __init__(self, backfill_id: str) -> None:
        super().__init__(f"backfill '{backfill_id}' not found")
        self.backfill_id = backfill_id


class RunExists(BatonError):
    """A run with that ID is already written (a backfill's date, written by its start or by the reconciler)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run '{run_id}' already exists")
        self.run_id = run_id


class RunNotFound(BatonError):
    """No run with that ID exists."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run '{run_id}' not found")
        self.run_id = run_id


class RunNotRetryable(BatonError):
    """Only a FAILED or CANCELLED run can be retried; the message says why this one cannot."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"run '{run_id}' cannot be retried: {reason}")
        self.run_id = run_id
        self.reason = reason


class RunNotHoldable(BatonError):
    """Only a RUNNING run can be held or released; the message says why this one cannot."""

    def __init__(self, run_id: str, action: str, reason: str) -> None:
        super().__init__(f"run '{run_id}' cannot be {action}: {reason}")
        self.run_id = run_id
        self.reason = reason


class CancelIncomplete(BatonError):
    """The run is CANCELLED in Baton (nothing more is submitted), but BigQuery refused to cancel some of its jobs,
    which may still run: `cancel` again asks BigQuery once more."""

    def __init__(self, run_id: str, refused: Sequence[str]) -> None:
        super().__init__(
            f"run '{run_id}' is CANCELLED, but BigQuery did not accept the cancel of {len(refused)} job(s), which may "
            f"still run: {'; '.join(refused[:5])}{' ...' if len(refused) > 5 else ''}; cancel it again to retry"
        )
        self.run_id = run_id
        self.refused = list(refused)


class CannotRerun(BatonError):
    """`rerun RUN --from JOB` needs a finished run and a job of its manifest's current version."""

    def __init__(self, run_id: str, reason: str) -> None:
        super().__init__(f"cannot rerun '{run_id}': {reason}")
        self.run_id = run_id
        self.reason = reason


class InvalidRequest(BatonError):
    """A request body is malformed; the message says which field and why."""


class CommitTooLarge(BatonError):
    """A commit would pass Spanner's mutation limit (INVALID_ARGUMENT, never retried): a transition that
    should have been chunked was not. Nothing of it is written."""

    def __init__(self, mutations: int, budget: int) -> None:
        super().__init__(f"a commit of {mutations} mutations is over the budget of {budget}")
        self.mutations = mutations
        self.budget = budget


class TransientError(BatonError):
    """Infrastructure failed in a way a retry may cure (Spanner aborted, BigQuery 5xx)."""


class JobRefused(BatonError):
    """BigQuery refused a job at jobs.insert for good (400 invalid, 404 notFound, 403 accessDenied):
    the same request can never succeed, so the job fails with `reason` like a job that ran and failed."""

    def __init__(self, job_id: str, reason: str, message: str) -> None:
        super().__init__(f"BigQuery jobs.insert {job_id} refused: {reason}: {message}")
        self.job_id = job_id
        self.reason = reason
        self.message = message


def one_line(text: str, limit: int | None = None) -> str:
    """An error's text as one log-friendly line: its lines joined with '; ', white space folded,
    cut to `limit` characters. The one way entry points, logs and the CLI show an error."""
    line = "; ".join(" ".join(part.split()) for part in text.splitlines() if part.strip())
    if limit is None or len(line) <= limit:
        return line
    return line[: limit - 3] + "..."
