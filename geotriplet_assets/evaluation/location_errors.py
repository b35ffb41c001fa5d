"""Localisation errors summarised: the median and 90th percentile in metres, and the share of
queries within 25 m, 100 m and 1 km (the thresholds of visual place recognition benchmarks,
25 m first)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WITHIN_M = (25.0, 100.0, 1000.0)


@dataclass(frozen=True)
class ErrorSummary:
    """Distances in metres from estimates to the truth, summarised."""

    median_m: float
    p90_m: float
    within: dict[float, float]  # threshold in metres -> share of queries

    @classmethod
    def of(cls, errors: np.ndarray) -> ErrorSummary:
        if len(errors) == 0:
            nan = math.nan
            return cls(nan, nan, dict.fromkeys(WITHIN_M, nan))
        return cls(
            median_m=float(np.median(errors)),
            p90_m=float(np.percentile(errors, 90)),
            within={m: float((errors <= m).mean()) for m in WITHIN_M},
        )

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        flat = {f"{prefix}median_error_m": self.median_m, f"{prefix}p90_error_m": self.p90_m}
        flat.update({f"{prefix}within_{m:g}m": share for m, share in self.within.items()})
        return flat
