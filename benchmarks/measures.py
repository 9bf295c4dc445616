"""Summaries of timing samples: percentiles and ratios that read the same in every table."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; what numpy calls 'linear'."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Summary:
    """p50/p95 and the sample count of one series, in the series' own unit."""

    n: int
    p50: float
    p95: float
    mean: float
    low: float
    high: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        return cls(
            n=len(samples),
            p50=percentile(samples, 50),
            p95=percentile(samples, 95),
            mean=statistics.fmean(samples),
            low=min(samples),
            high=max(samples),
        )

    def scaled(self, factor: float) -> Summary:
        return Summary(self.n, self.p50 * factor, self.p95 * factor, self.mean * factor, self.low * factor, self.high * factor)

    def to_json(self) -> dict[str, float]:
        return {"n": self.n, "p50": self.p50, "p95": self.p95, "mean": self.mean, "min": self.low, "max": self.high}


def ratio(value: float, base: float) -> float:
    return value / base if base else math.inf
