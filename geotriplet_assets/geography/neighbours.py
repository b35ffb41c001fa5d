"""Exact geographic nearest neighbours of points given as unit ECEF vectors.

Chord length between unit vectors is a monotonic function of great-circle
distance, so a Euclidean KD-tree on the 3-D vectors finds the exact
great-circle neighbours; chords are converted to metres afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial import cKDTree

from geotriplet_assets.geodesy import CoordinateError, chord_to_metres, metres_to_chord


@dataclass(frozen=True)
class NeighbourGraph:
    """Row i: the k nearest other points of point i, by ascending great-circle distance."""

    indices: np.ndarray
    distances_m: np.ndarray

    @property
    def k(self) -> int:
        return int(self.indices.shape[1])


def _as_unit_vectors(unit_vectors: ArrayLike) -> np.ndarray:
    v = np.ascontiguousarray(unit_vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise CoordinateError(f"unit vectors must have shape (N, 3), got {v.shape}")
    if not np.isfinite(v).all():
        row = int(np.flatnonzero(~np.isfinite(v).all(axis=1))[0])
        raise CoordinateError(f"unit vector at row {row} is not finite: {v[row].tolist()}")
    return v


def _effective_k(n: int, k: int) -> int:
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    return max(0, min(k, n - 1))


def _empty_graph(n: int, k: int) -> NeighbourGraph:
    return NeighbourGraph(
        indices=np.empty((n, k), dtype=np.int32), distances_m=np.empty((n, k), dtype=np.float32)
    )


def _drop_self(
    query_rows: np.ndarray, indices: np.ndarray, chords: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index; rows where it is absent lose their last column.

    The own index can be absent when more than k+1 points share its coordinates.
    """
    is_self = indices == query_rows[:, None]
    is_self[~is_self.any(axis=1), -1] = True
    keep = ~is_self
    k = indices.shape[1] - 1
    return indices[keep].reshape(-1, k), chords[keep].reshape(-1, k)


def exact_knn(
    unit_vectors: ArrayLike, k: int, *, workers: int = -1, chunk_size: int = 65_536
) -> NeighbourGraph:
    """Exact k nearest other points by great-circle distance (KD-tree on unit vectors).

    Uses k_eff = min(k, n - 1) columns. Points are queried in chunks so that
    only the int32/float32 result and one chunk of float64 work stay in memory.
    Among neighbours at exactly equal distance the order is the tree's.
    """
    vectors = _as_unit_vectors(unit_vectors)
    n = len(vectors)
    k_eff = _effective_k(n, k)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if k_eff == 0:
        return _empty_graph(n, 0)
    tree = cKDTree(vectors)
    graph = _empty_graph(n, k_eff)
    # Querying in the tree's leaf order keeps the nodes each chunk visits in cache.
    query_order = tree.indices
    for start in range(0, n, chunk_size):
        rows = query_order[start : start + chunk_size]
        chords, indices = tree.query(vectors[rows], k=k_eff + 1, workers=workers)
        indices, chords = _drop_self(rows, indices, chords)
        graph.indices[rows] = indices
        graph.distances_m[rows] = chord_to_metres(chords)
    return graph


def _squared_chords(block: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """(b, n) squared chords, summed in the same order as the KD-tree does."""
    squared = (block[:, None, 0] - vectors[None, :, 0]) ** 2
    squared += (block[:, None, 1] - vectors[None, :, 1]) ** 2
    squared += (block[:, None, 2] - vectors[None, :, 2]) ** 2
    return squared


def brute_force_knn(unit_vectors: ArrayLike, k: int, *, block_size: int = 512) -> NeighbourGraph:
    """Exact O(n^2) reference for exact_knn; ties are ordered by index."""
    vectors = _as_unit_vectors(unit_vectors)
    n = len(vectors)
    k_eff = _effective_k(n, k)
    if k_eff == 0:
        return _empty_graph(n, 0)
    graph = _empty_graph(n, k_eff)
    for start in range(0, n, block_size):
        rows = np.arange(start, min(start + block_size, n))
        squared = _squared_chords(vectors[rows], vectors)
        squared[np.arange(len(rows)), rows] = np.inf
        nearest = np.argpartition(squared, k_eff - 1, axis=1)[:, :k_eff]
        nearest_squared = np.take_along_axis(squared, nearest, axis=1)
        order = np.lexsort((nearest, nearest_squared), axis=1)
        nearest = np.take_along_axis(nearest, order, axis=1)
        graph.indices[rows] = nearest
        graph.distances_m[rows] = chord_to_metres(
            np.sqrt(np.take_along_axis(nearest_squared, order, axis=1))
        )
    return graph


def nearest_distance_m(
    points: ArrayLike, reference: ArrayLike, *, upper_bound_m: float = np.inf
) -> np.ndarray:
    """Great-circle metres from each point to its nearest reference point.

    inf where the reference set is empty or nothing lies within upper_bound_m.
    """
    queries = _as_unit_vectors(points)
    references = _as_unit_vectors(reference)
    if len(references) == 0 or len(queries) == 0:
        return np.full(len(queries), np.inf)
    bound = np.inf if np.isinf(upper_bound_m) else float(metres_to_chord(upper_bound_m))
    chords, _ = cKDTree(references).query(queries, k=1, distance_upper_bound=bound, workers=-1)
    found = np.isfinite(chords)
    metres = np.full(len(queries), np.inf)
    metres[found] = chord_to_metres(chords[found])
    return metres
