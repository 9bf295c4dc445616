"""Selecting part of a manifest with dbt's graph operators, so a run can run a subgraph.

A spec is selectors separated by spaces (union); a selector is terms joined by commas
(intersection); a term is a job key or `label:KEY=VALUE`, with graph operators around it:
`+x` (x and its ancestors), `x+` (x and its descendants), `+x+`, `2+x` (ancestors up to
two levels), `x+1` (children only). Jobs outside the selection are not part of the run;
a selected job's upstreams that were not selected count as done.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from baton.domain.specs import JobSpec
from baton.errors import InvalidSelection
from baton.manifests.model import Manifest

_TERM = re.compile(
    r"^(?P<up>(?P<up_depth>\d+)?\+)?(?P<base>label:[a-z][a-z0-9_-]{0,62}=[a-z0-9_-]{0,63}|[a-z][a-z0-9_]{0,62})(?P<down>\+(?P<down_depth>\d+)?)?$"
)


@dataclass(frozen=True)
class Selection:
    """The jobs a run takes from its manifest; `version` stays the whole manifest's (the snapshot's identity)."""

    name: str
    version: str
    jobs: tuple[JobSpec, ...]


def select(manifest: Manifest, spec: str | None = None, exclude: str | None = None) -> Selection:
    """The selected jobs, in manifest order, their `needs` narrowed to selected jobs. Raise InvalidSelection."""
    keys = [job.key for job in manifest.jobs]
    chosen = _matching(manifest, spec, "select") if spec and spec.strip() else set(keys)
    if exclude and exclude.strip():
        chosen -= _matching(manifest, exclude, "exclude")
    if not chosen:
        raise InvalidSelection(manifest.name, "the selection leaves no job to run")
    jobs = tuple(replace(job, needs=tuple(up for up in job.needs if up in chosen)) for job in manifest.jobs if job.key in chosen)
    return Selection(manifest.name, manifest.version, jobs)


def _matching(manifest: Manifest, spec: str, option: str) -> set[str]:
    union: set[str] = set()
    for selector in spec.split():
        intersection: set[str] | None = None
        for term in selector.split(","):
            found = _term(manifest, term, option)
            intersection = found if intersection is None else intersection & found
        union |= intersection or set()
    return union


def _term(manifest: Manifest, term: str, option: str) -> set[str]:
    match = _TERM.match(term)
    if match is None:
        raise InvalidSelection(
            manifest.name, f"--{option} '{term}' is not a job key or label:KEY=VALUE with + around it (e.g. +x, x+, 2+x, x+1)"
        )
    base = match["base"]
    if base.startswith("label:"):
        key, _, value = base.removeprefix("label:").partition("=")
        seeds = {job.key for job in manifest.jobs if job.labels.get(key) == value}
    else:
        seeds = {base} if any(job.key == base for job in manifest.jobs) else set()
    if not seeds:
        raise InvalidSelection(manifest.name, f"--{option} '{term}': no job matches '{base}'")
    found = set(seeds)
    upstreams = {job.key: job.needs for job in manifest.jobs}
    if match["up"]:
        found |= _reach(seeds, upstreams, _depth(match["up_depth"]))
    if match["down"]:
        dependents: dict[str, list[str]] = {key: [] for key in upstreams}
        for key, needs in upstreams.items():
            for up in needs:
                dependents[up].append(key)
        found |= _reach(seeds, dependents, _depth(match["down_depth"]))
    return found


def _depth(raw: str | None) -> int | None:
    return int(raw) if raw else None


def _reach(seeds: Iterable[str], edges: Mapping[str, Sequence[str]], depth: int | None) -> set[str]:
    """Everything reachable from `seeds` along `edges`, at most `depth` steps (None: unbounded); iterative."""
    reached: set[str] = set()
    frontier = list(seeds)
    level = 0
    while frontier and (depth is None or level < depth):
        following = [nxt for key in frontier for nxt in edges.get(key, ()) if nxt not in reached]
        reached.update(following)
        frontier = following
        level += 1
    return reached
