"""Reference geometry for tests: every pair of points within a great-circle radius."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from geotriplet_assets.geodesy import metres_to_chord


def pairs_within_m(unit_vectors: ArrayLike, radius_m: float) -> np.ndarray:
    """(m, 2) int64 index pairs i < j whose great-circle distance is at most radius_m."""
    vectors = np.ascontiguousarray(unit_vectors, dtype=np.float64)
    if len(vectors) < 2:
        return np.empty((0, 2), dtype=np.int64)
    chord = float(metres_to_chord(radius_m))
    pairs = cKDTree(vectors).query_pairs(chord, output_type="ndarray")
    return pairs.astype(np.int64, copy=False)
