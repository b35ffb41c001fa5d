"""A seeded sample of the query images, and the 95 % confidence intervals of the figures
measured on it.

Evaluating every image of a split of millions against the whole split is hours of exact
search; a sample of 10 000 queries against the whole gallery measures recall@1 within about
±1 point. Without a cap (`max_queries=None`) every eligible image queries.
"""

from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959963984540054


def sample_queries(candidates: np.ndarray, max_queries: int | None, seed: int) -> np.ndarray:
    """At most MAX_QUERIES of CANDIDATES (all when None or when there are fewer), drawn
    without replacement with SEED, in ascending order."""
    if max_queries is not None and max_queries < 1:
        raise ValueError(f"max_queries must be at least 1 or None (all), got {max_queries}")
    if max_queries is None or len(candidates) <= max_queries:
        return np.asarray(candidates)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=max_queries, replace=False))


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (NaN, NaN without trials)."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    z2 = Z_95**2
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = Z_95 * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials**2)) / (1 + z2 / trials)
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exactly 0 and 1 at the ends
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """95 % normal-approximation interval of the mean of VALUES (NaN, NaN when fewer than 2)."""
    if len(values) < 2:
        return math.nan, math.nan
    mean = float(np.mean(values))
    half = Z_95 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean - half, mean + half
