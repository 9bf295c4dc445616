"""One exception per failure mode. Entry points map these to statuses; nothing else should."""

from __future__ import annotations

from collections.abc import Sequence


class BatonError(Exception):
    """Base of every error Baton raises on purpose."""


class ManifestNotFound(BatonError):
    """No manifest of that name is deployed."""

    def __init__(self, name: str) -> None:
        super().__init__(f"manifest '{name}' not found")
        self.name = name


class ManifestInvalid(BatonError):
    """A manifest failed validation; `problems` holds one line per problem."""

    def __init__(self, where: str, problems: Sequence[str]) -> None:
        self.where = where
        self.problems = list(problems)
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


def one_line(text: str, limit: int | None = None) -> str:
    """An error's text as one log-friendly line: its lines joined with '; ', white space folded,
    cut to `limit` characters. The one way entry points, logs and the CLI show an error."""
    line = "; ".join(" ".join(part.split()) for part in text.splitlines() if part.strip())
    if limit is None or len(line) <= limit:
        return line
    return line[: limit - 3] + "..."
