"""k-nearest-neighbour search over a bundle: FAISS, a geographic filter, exclusions, grouping.

Scores are inner products of the query with the rows of vectors.npy (cosine similarities for
unit vectors): hits found through FAISS are re-scored exactly (`row_scores`), so every index
type and the exact filtered path rank by the same numbers. Ranking is by descending score, ties by
ascending row: deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from geotriplet_assets.bundle.geo_filter import LatitudeIndex
from geotriplet_assets.bundle.image_table import ImageTable

# First fetch for a query that groups by building: k times this many hits.
_GROUP_OVERFETCH = 4
# First fetch for a query that excludes a building: this many extra hits.
_BUILDING_OVERFETCH = 32
# Each re-search fetches this many times more than the previous one.
_GROWTH = 4


@dataclass(frozen=True)
class GeoFilter:
    """Only images within RADIUS_M metres (great circle) of (LAT, LON)."""

    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True)
class SearchQuery:
    """One query: its (E,) float32 vector and how to filter the hits.

    - `geo`: only images within the circle;
    - `group_by_building`: at most one hit, the best, per building (dataset_id, target_id);
    - `exclude_rows`: rows never returned (an image_id query excludes its own row);
    - `exclude_building`: a (dataset_id, target_id) whose images are never returned.
    """

    vector: np.ndarray
    k: int
    geo: GeoFilter | None = None
    group_by_building: bool = False
    exclude_rows: frozenset[int] = field(default_factory=frozenset)
    exclude_building: tuple[int, int] | None = None


@dataclass(frozen=True)
class Neighbour:
    row: int
    image_id: str
    dataset_id: int
    target_id: int
    lat: float
    lon: float
    score: float


class Searcher:
    """Answers SearchQuery batches over one FAISS index and its vectors and image metadata."""

    def __init__(
        self,
        index: faiss.Index,
        vectors: np.ndarray,
        images: ImageTable,
        *,
        exact_filter_max_candidates: int = 50_000,
        threads: int | None = None,
        rerank: int = 1,
    ) -> None:
        if index.ntotal != len(vectors) or index.ntotal != images.count:
            raise ValueError(
                f"index ({index.ntotal}), vectors ({len(vectors)}) and images "
                f"({images.count}) disagree on the number of rows"
            )
        self._index = index
        self._vectors = vectors
        self._images = images
        self._dim = vectors.shape[1]
        self._exact_filter_max_candidates = exact_filter_max_candidates
        self._threads = threads
        if rerank < 1:
            raise ValueError(f"rerank must be at least 1, got {rerank}")
        self._rerank = rerank
        self._geo = LatitudeIndex(images.lat, images.lon)
        self._parameters = _parameters_factory(index)

    def search(self, queries: Sequence[SearchQuery]) -> list[list[Neighbour]]:
        """The hits of each query, best first, at most k each (fewer when fewer match)."""
        for position, query in enumerate(queries):
            self._check(query, position)
        results: list[list[Neighbour]] = [[] for _ in queries]
        unfiltered = [i for i, query in enumerate(queries) if query.geo is None]
        if unfiltered:
            # Every query without a geographic filter goes to FAISS in one call.
            total = self._index.ntotal
            fetch = max(_initial_fetch(queries[i], total, self._rerank) for i in unfiltered)
            matrix = np.stack([queries[i].vector for i in unfiltered])
            _, ids = faiss_search(self._index, matrix, fetch, None, self._threads)
            for i, first_ids in zip(unfiltered, ids, strict=True):
                results[i] = self._complete(queries[i], first_ids, fetch, total, None)
        for i, query in enumerate(queries):
            if query.geo is not None:
                results[i] = self._search_filtered(query, query.geo)
        return results

    def _check(self, query: SearchQuery, position: int) -> None:
        vector = query.vector
        if vector.shape != (self._dim,) or vector.dtype != np.float32:
            raise ValueError(
                f"query {position}: vector must be float32 of shape ({self._dim},), "
                f"got {vector.dtype} {vector.shape}"
            )
        if not np.isfinite(vector).all():
            raise ValueError(f"query {position}: vector has non-finite values")
        if query.k < 1:
            raise ValueError(f"query {position}: k must be at least 1, got {query.k}")

    def _search_filtered(self, query: SearchQuery, geo: GeoFilter) -> list[Neighbour]:
        candidates = self._geo.rows_within(geo.lat, geo.lon, geo.radius_m)
        if len(candidates) <= self._exact_filter_max_candidates:
            return self._rank(query, candidates)
        mask = np.zeros(self._index.ntotal, dtype=bool)
        mask[candidates] = True
        selector = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        parameters = self._parameters(selector)
        limit = len(candidates)
        fetch = _initial_fetch(query, limit, self._rerank)
        _, ids = faiss_search(self._index, query.vector[None, :], fetch, parameters, self._threads)
        return self._complete(query, ids[0], fetch, limit, parameters)

    def _complete(
        self,
        query: SearchQuery,
        ids: np.ndarray,
        fetch: int,
        limit: int,
        parameters: faiss.SearchParameters | None,
    ) -> list[Neighbour]:
        """Rank FAISS's hits; fetch more while fewer than k survive and more may exist."""
        while True:
            rows = ids[ids >= 0]
            hits = self._rank(query, rows)
            exhausted = len(rows) < fetch or fetch >= limit
            if len(hits) >= query.k or exhausted:
                return hits
            fetch = min(fetch * _GROWTH, limit)
            _, found = faiss_search(
                self._index, query.vector[None, :], fetch, parameters, self._threads
            )
            ids = found[0]

    def _rank(self, query: SearchQuery, rows: np.ndarray) -> list[Neighbour]:
        """The best k of ROWS by exact score, after exclusions and grouping."""
        rows = self._without_excluded(query, rows)
        if len(rows) == 0:
            return []
        scores = row_scores(self._vectors[rows], query.vector)
        if query.group_by_building:
            positions = self._best_per_building(scores, rows, query.k)
        else:
            positions = _best_first(scores, rows, query.k)
        return [self._neighbour(int(rows[p]), float(scores[p])) for p in positions[: query.k]]

    def _without_excluded(self, query: SearchQuery, rows: np.ndarray) -> np.ndarray:
        keep = np.ones(len(rows), dtype=bool)
        if query.exclude_rows:
            excluded = np.fromiter(query.exclude_rows, dtype=np.int64)
            keep &= ~np.isin(rows, excluded)
        if query.exclude_building is not None:
            code = self._images.building_code_of(query.exclude_building)
            if code is not None:
                keep &= self._images.building_code[rows] != code
        return rows if keep.all() else rows[keep]

    def _best_per_building(self, scores: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
        """Positions of the best hit of each of the best K buildings, best first."""
        count = len(scores)
        depth = min(count, k * _GROUP_OVERFETCH)
        while True:
            order = _best_first(scores, rows, depth)
            codes = self._images.building_code[rows[order]]
            _, first = np.unique(codes, return_index=True)
            # Once the prefix holds k buildings, their first hits are the global top k.
            if len(first) >= k or depth >= count:
                return order[np.sort(first)]
            depth = min(count, depth * _GROWTH)

    def _neighbour(self, row: int, score: float) -> Neighbour:
        images = self._images
        return Neighbour(
            row=row,
            image_id=images.image_id(row),
            dataset_id=int(images.dataset_id[row]),
            target_id=int(images.target_id[row]),
            lat=float(images.lat[row]),
            lon=float(images.lon[row]),
            score=score,
        )


def row_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Inner product of each row with QUERY. einsum's loop gives each row the same float32
    result whichever other rows are scored with it (BLAS gemv does not), so the ranking of
    a row never depends on how many hits were fetched."""
    return np.einsum("ij,j->i", vectors.astype(np.float32, copy=False), query)


def _initial_fetch(query: SearchQuery, limit: int, rerank: int) -> int:
    """How many hits to ask FAISS for first: k (more with grouping and exclusions), times
    RERANK where the index's own scores are approximate (IVF-PQ) and exact re-scoring of a
    wider candidate set recovers what compression lost."""
    fetch = query.k * (_GROUP_OVERFETCH if query.group_by_building else 1)
    fetch += len(query.exclude_rows)
    if query.exclude_building is not None:
        fetch += _BUILDING_OVERFETCH
    fetch *= rerank
    return max(1, min(fetch, limit))


def _best_first(scores: np.ndarray, rows: np.ndarray, depth: int) -> np.ndarray:
    """Positions of at least the best DEPTH scores (all ties of the last included), sorted by
    descending score, then ascending row."""
    count = len(scores)
    if depth < count:
        threshold = np.partition(scores, count - depth)[count - depth]
        positions = np.flatnonzero(scores >= threshold)
    else:
        positions = np.arange(count)
    order = np.lexsort((rows[positions], -scores[positions]))
    return positions[order]


def faiss_search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    parameters: faiss.SearchParameters | None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """`index.search(queries, k, params=parameters)` through FAISS's C entry point, on at
    most THREADS OpenMP threads (default: OpenMP's own, every core unless OMP_NUM_THREADS).

    Importing `faiss.contrib.torch_utils` (pytorch-metric-learning does) replaces the Python
    `Index.search` with one that has no `params`; this call does not depend on that wrapper.
    """
    if threads is not None:
        # OpenMP keeps this setting per calling thread, and requests run on worker threads.
        faiss.omp_set_num_threads(threads)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    count = len(queries)
    distances = np.empty((count, k), dtype=np.float32)
    labels = np.empty((count, k), dtype=np.int64)
    index.search_c(
        count,
        faiss.swig_ptr(queries),
        k,
        faiss.swig_ptr(distances),
        faiss.swig_ptr(labels),
        parameters,
    )
    return distances, labels


def configure_index(index: faiss.Index, params: Mapping[str, Any]) -> None:
    """Apply the manifest's search-time parameters (HNSW ef_search, IVF nprobe) to INDEX."""
    base = _innermost(index)
    if isinstance(base, faiss.IndexHNSW) and "ef_search" in params:
        base.hnsw.efSearch = int(params["ef_search"])
    if isinstance(base, faiss.IndexIVF) and "nprobe" in params:
        base.nprobe = int(params["nprobe"])


def _innermost(index: faiss.Index) -> faiss.Index:
    """The index under id maps and pre-transforms, whose type decides the search parameters."""
    while isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2 | faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def _parameters_factory(
    index: faiss.Index,
) -> Callable[[faiss.IDSelector], faiss.SearchParameters]:
    """Search parameters carrying a selector and the index's own search-time settings
    (parameters passed to a search replace the index's, so they must repeat them)."""
    base = _innermost(index)
    if isinstance(base, faiss.IndexHNSW):
        return lambda selector: faiss.SearchParametersHNSW(
            sel=selector, efSearch=base.hnsw.efSearch
        )
    if isinstance(base, faiss.IndexIVF):
        return lambda selector: faiss.SearchParametersIVF(
            sel=selector, nprobe=base.nprobe, max_codes=base.max_codes
        )
    return lambda selector: faiss.SearchParameters(sel=selector)
