"""Consistency properties every exact geographic KNN graph must have."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geotriplet_assets.geodesy import great_circle_m
from geotriplet_assets.geography.neighbour_store import SplitNeighbours

# float32 metres: relative error ~6e-8, plus slack for the chord/haversine round trip
_RELATIVE_TOLERANCE = 1e-5
_ABSOLUTE_TOLERANCE_M = 0.05


@dataclass(frozen=True)
class NeighbourProblems:
    unsorted_rows: int
    self_edges: int
    distance_mismatches: int
    missing_reverse_edges: int

    @property
    def total(self) -> int:
        return (
            self.unsorted_rows
            + self.self_edges
            + self.distance_mismatches
            + self.missing_reverse_edges
        )


def find_neighbour_problems(
    split: SplitNeighbours, lat: np.ndarray, lon: np.ndarray
) -> NeighbourProblems:
    """Count violations in one split's graph; LAT/LON are indexed by global target index.

    Reverse edges: in an exact KNN graph, if j is among i's neighbours and d(i, j) is
    strictly below j's k-th distance, then i must be among j's neighbours.
    """
    n, k = split.neighbours.shape
    if n == 0 or k == 0:
        return NeighbourProblems(0, 0, 0, 0)
    distances = split.distances_m.astype(np.float64)
    unsorted_rows = int(np.any(np.diff(distances, axis=1) < 0, axis=1).sum())
    self_edges = int((split.neighbours == split.target_index[:, None]).sum())

    source = np.repeat(split.target_index, k)
    target = split.neighbours.ravel()
    recomputed = great_circle_m(lat[source], lon[source], lat[target], lon[target])
    stored = distances.ravel()
    tolerance = _ABSOLUTE_TOLERANCE_M + _RELATIVE_TOLERANCE * recomputed
    distance_mismatches = int((np.abs(recomputed - stored) > tolerance).sum())

    local = np.full(int(split.target_index.max()) + 1, -1, dtype=np.int64)
    local[split.target_index] = np.arange(n)
    source_local = np.repeat(np.arange(n), k)
    target_local = local[target]
    kth_of_target = distances[target_local, -1]
    must_be_mutual = stored < kth_of_target - (
        _ABSOLUTE_TOLERANCE_M + _RELATIVE_TOLERANCE * stored
    )
    edges = np.sort(source_local * n + target_local.astype(np.int64))
    reverse = target_local[must_be_mutual] * n + source_local[must_be_mutual]
    position = np.searchsorted(edges, reverse).clip(max=len(edges) - 1)
    missing_reverse_edges = int((edges[position] != reverse).sum())
    return NeighbourProblems(unsorted_rows, self_edges, distance_mismatches, missing_reverse_edges)
