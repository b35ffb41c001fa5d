"""Latency samples to the figures the serving benchmarks print."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        if not seconds:
            raise ValueError("no latency samples")
        ms = 1000 * np.asarray(seconds, dtype=np.float64)
        p50, p99 = np.percentile(ms, [50, 99])
        return cls(len(ms), float(p50), float(p99), float(ms.mean()))
