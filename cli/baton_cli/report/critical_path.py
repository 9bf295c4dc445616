"""The critical path of a run: the chain of dependent jobs whose durations add up to the most.

Shortening any job off this chain cannot make the run finish sooner; it is where an
operator looks first when a run is slow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class CycleError(ValueError):
    """The dependency edges loop, so no longest path exists (manifests are validated acyclic)."""


@dataclass(frozen=True)
class CriticalPath:
    keys: tuple[str, ...]  # from a root to a sink, in dependency order
    seconds: float  # the sum of their durations

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def edges(self) -> frozenset[tuple[str, str]]:
        """(upstream, dependent) pairs along the path."""
        return frozenset(zip(self.keys, self.keys[1:], strict=False))


def critical_path(durations: Mapping[str, float], needs: Mapping[str, Iterable[str]]) -> CriticalPath:
    """The longest path by summed duration through the DAG given by `needs` (job -> its upstreams).

    Every key of `durations` is a node; upstreams that are not nodes are ignored, and
    negative durations count as 0. Ties go to the alphabetically first chain, so the same
    run always marks the same path. Iterative (Kahn's order), so a long chain cannot
    exhaust Python's recursion limit.
    """
    upstreams = {key: sorted({up for up in needs.get(key, ()) if up in durations}) for key in durations}
    dependents: dict[str, list[str]] = {key: [] for key in durations}
    waiting = {key: len(ups) for key, ups in upstreams.items()}
    for key, ups in upstreams.items():
        for up in ups:
            dependents[up].append(key)
    ready = sorted(key for key, count in waiting.items() if count == 0)
    best: dict[str, tuple[float, tuple[str, ...]]] = {}
    while ready:
        key = ready.pop()
        # Longest first; among equals, the lexicographically smallest chain.
        before = min((best[up] for up in upstreams[key]), key=_rank, default=(0.0, ()))
        best[key] = (before[0] + max(durations[key], 0.0), (*before[1], key))
        for dependent in dependents[key]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    if len(best) < len(durations):
        stuck = sorted(set(durations) - set(best))
        raise CycleError(f"dependency cycle among {', '.join(stuck)}")
    if not best:
        return CriticalPath((), 0.0)
    seconds, keys = min(best.values(), key=_rank)
    return CriticalPath(keys, seconds)


def _rank(found: tuple[float, tuple[str, ...]]) -> tuple[float, tuple[str, ...]]:
    return -round(found[0], 6), found[1]  # float sums of equal chains may differ in the last bits
