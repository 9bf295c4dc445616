"""Baton's benchmarks: each figure measured next to its floor or baseline in the same run.

`python -m benchmarks` (or `make bench`) runs them all against the real emulators and
the local stack, prints progress, and writes `benchmarks/results/latest.{md,png,json}`.
"""
