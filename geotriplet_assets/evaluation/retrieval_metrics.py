"""Leave-one-out retrieval metrics: recall@k, mAP@R and localisation errors, of the top hit's
position and of the estimate `POST /locate` makes from the best hits (`bundle.locate`).

Every image with at least one other image of its label (or a seeded sample of them,
`max_queries`) queries all other images of the set by cosine similarity; figures measured
on a sample carry 95 % confidence intervals. Images whose label is unique stay in the
gallery as distractors but ask no query. Equal similarities rank the lower gallery index
first, so results do not depend on chunking or on the order numpy happens to pick.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from geotriplet_assets.bundle.locate import (
    DEFAULT_CLUSTER_RADIUS_M,
    DEFAULT_LOCATE_K,
    estimate_positions,
)
from geotriplet_assets.evaluation.location_errors import ErrorSummary
from geotriplet_assets.evaluation.query_sample import (
    mean_interval,
    sample_queries,
    wilson_interval,
)
from geotriplet_assets.geodesy import great_circle_m, validate_latlon

DEFAULT_KS = (1, 5, 10, 20)
BYTES_PER_SIMILARITY = 16
"""Peak bytes per query x gallery similarity: the float32 block and its temporaries."""
BYTES_PER_RANKED = 48
"""Peak bytes per query x ranked neighbour: indices, scores, relevance and precisions."""
BYTES_PER_HIT_PAIR = 48
"""Peak bytes per query x pair of the hits it is located from: distances and temporaries."""
CHUNK_BYTES = 64 << 20
"""Chunks stay this small even under a larger budget: bigger blocks are slower, not faster
(every fresh block is page-faulted in; 10 000 x 10 000 took 5.2 s in 1 GiB chunks, 1.0 s in
64 MiB ones, `benchmarks/bench_retrieval_metrics.py`)."""


class RetrievalInputError(ValueError):
    """Embeddings, labels, coordinates or settings that cannot be evaluated."""


@dataclass(frozen=True)
class RetrievalMetrics:
    """Retrieval quality of one set of embeddings; NaN everywhere when queries is 0."""

    recall_at: dict[int, float]
    """Share of queries with an image of their own label among the top k."""
    map_at_r: float
    top1: ErrorSummary
    """Distances from each query's position to its top hit's."""
    locate: ErrorSummary
    """Distances from each query's position to the estimate from its best hits."""
    queries: int
    eligible: int = 0
    """Images that could query (their label has another image); `queries` of them did."""
    recall_at_radius: dict[int, float] = field(default_factory=dict)
    """Place-recognition recall@k: share of queries with a hit recorded within
    `recall_radius_m` of the query's own position among the top k, whatever its label."""
    recall_radius_m: float = 25.0
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """95 % confidence interval of "recall@k" (Wilson) and "map@r" (normal) over the
    queries: a sample's uncertainty, zero-width in effect when every eligible image queried."""

    @property
    def median_error_m(self) -> float:
        return self.top1.median_m

    @property
    def p90_error_m(self) -> float:
        return self.top1.p90_m

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """Flat metrics, e.g. {"val/recall@1": .., "val/map@r": ..} for prefix "val/"; the
        top hit's errors unprefixed ("val/median_error_m"), the estimate's as "locate_"."""
        flat = {f"{prefix}recall@{k}": value for k, value in sorted(self.recall_at.items())}
        for k, value in sorted(self.recall_at_radius.items()):
            flat[f"{prefix}recall@{k}_{self.recall_radius_m:g}m"] = value
        flat[f"{prefix}map@r"] = self.map_at_r
        flat.update(self.top1.as_dict(prefix))
        flat.update(self.locate.as_dict(f"{prefix}locate_"))
        for name in ("recall@1", "map@r"):
            if name in self.intervals:
                low, high = self.intervals[name]
                flat[f"{prefix}{name}_ci95_low"] = low
                flat[f"{prefix}{name}_ci95_high"] = high
        flat[f"{prefix}queries"] = float(self.queries)
        flat[f"{prefix}queries_eligible"] = float(self.eligible)
        return flat


def evaluate_retrieval(
    embeddings: np.ndarray,
    labels: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    memory_budget_bytes: int = 1 << 30,
    normalize: bool = True,
    locate_k: int = DEFAULT_LOCATE_K,
    cluster_radius_m: float = DEFAULT_CLUSTER_RADIUS_M,
    max_queries: int | None = None,
    seed: int = 0,
    recall_radius_m: float = 25.0,
) -> RetrievalMetrics:
    """Leave-one-out retrieval metrics of (N, D) embeddings labelled by target.

    A neighbour is relevant when it has the query's label. Queries are processed in
    chunks whose similarity block and temporaries fit memory_budget_bytes. With
    normalize=False the embeddings are taken as unit length already (plain dot product).
    Each query is also located from its LOCATE_K best hits as `POST /locate` does, with
    hits clustered within CLUSTER_RADIUS_M. With MAX_QUERIES, at most that many eligible
    images (drawn with SEED) query the whole gallery. recall@k at RECALL_RADIUS_M counts a
    query whose top k hold an image recorded within that distance of it (the place-recognition
    protocol), beside recall@k by label.
    """
    vectors = _gallery_vectors(embeddings, normalize)
    codes = _label_codes(labels, len(vectors))
    lat, lon = _coordinates(lat, lon, len(vectors))
    ks = _checked_ks(ks)
    if memory_budget_bytes <= 0:
        raise RetrievalInputError(
            f"memory_budget_bytes must be positive, got {memory_budget_bytes}"
        )
    if not recall_radius_m > 0:
        raise RetrievalInputError(f"recall_radius_m must be positive, got {recall_radius_m}")
    if locate_k < 1 or not cluster_radius_m > 0:
        raise RetrievalInputError(
            f"locate_k and cluster_radius_m must be positive, got {locate_k}, {cluster_radius_m}"
        )

    relevant_counts = np.bincount(codes)[codes] - 1
    eligible = np.flatnonzero(relevant_counts > 0)
    try:
        queries = sample_queries(eligible, max_queries, seed)
    except ValueError as error:
        raise RetrievalInputError(str(error)) from error
    if queries.size == 0:
        nan = float("nan")
        nowhere = ErrorSummary.of(np.zeros(0))
        return RetrievalMetrics(
            {k: nan for k in ks},
            nan,
            nowhere,
            nowhere,
            queries=0,
            recall_at_radius={k: nan for k in ks},
            recall_radius_m=recall_radius_m,
        )

    n = len(vectors)
    located_from = min(n - 1, locate_k)
    deepest = min(n - 1, max(max(ks), int(relevant_counts.max()), located_from))
    chunk_rows = _chunk_rows(n, deepest, located_from, memory_budget_bytes)
    tally = _Tally(ks, queries.size, eligible.size, recall_radius_m)
    for start in range(0, queries.size, chunk_rows):
        chunk = queries[start : start + chunk_rows]
        relevant = relevant_counts[chunk]
        depth = min(n - 1, max(max(ks), int(relevant.max()), located_from))
        ranked, scores = _ranked_neighbours(vectors, chunk, depth)
        top1 = ranked[:, 0]
        hits = ranked[:, :located_from]
        estimate = estimate_positions(
            lat[hits], lon[hits], scores[:, :located_from], cluster_radius_m=cluster_radius_m
        )
        top = ranked[:, : max(ks)]
        near = great_circle_m(lat[chunk, None], lon[chunk, None], lat[top], lon[top])
        tally.add(
            start,
            codes[ranked] == codes[chunk, None],
            near <= recall_radius_m,
            relevant,
            great_circle_m(lat[chunk], lon[chunk], lat[top1], lon[top1]),
            great_circle_m(lat[chunk], lon[chunk], estimate.lat, estimate.lon),
        )
    return tally.metrics()


def _chunk_rows(n: int, deepest: int, located_from: int, memory_budget_bytes: int) -> int:
    """Queries per chunk whose similarity block, ranked and locate temporaries fit the
    budget (and CHUNK_BYTES)."""
    row_bytes = (
        BYTES_PER_SIMILARITY * n
        + BYTES_PER_RANKED * deepest
        + BYTES_PER_HIT_PAIR * located_from**2
    )
    return max(1, min(memory_budget_bytes, CHUNK_BYTES) // row_bytes)


class _Tally:
    """Recall hits, AP@R and localisation errors accumulated over the chunks of queries."""

    def __init__(self, ks: tuple[int, ...], queries: int, eligible: int, radius_m: float) -> None:
        self.ks = ks
        self.radius_m = radius_m
        self.near_hits = dict.fromkeys(ks, 0)
        self.queries = queries
        self.eligible = eligible
        self.hits = dict.fromkeys(ks, 0)
        self.average_precision = np.empty(queries, dtype=np.float64)
        self.top1_errors = np.empty(queries, dtype=np.float64)
        self.locate_errors = np.empty(queries, dtype=np.float64)

    def add(
        self,
        start: int,
        is_relevant: np.ndarray,
        is_near: np.ndarray,
        relevant: np.ndarray,
        top1_errors_m: np.ndarray,
        locate_errors_m: np.ndarray,
    ) -> None:
        for k in self.ks:
            self.hits[k] += int(is_relevant[:, :k].any(axis=1).sum())
            self.near_hits[k] += int(is_near[:, :k].any(axis=1).sum())
        self.average_precision[start : start + len(relevant)] = average_precision_at_r(
            is_relevant, relevant
        )
        self.top1_errors[start : start + len(top1_errors_m)] = top1_errors_m
        self.locate_errors[start : start + len(locate_errors_m)] = locate_errors_m

    def metrics(self) -> RetrievalMetrics:
        intervals = {f"recall@{k}": wilson_interval(self.hits[k], self.queries) for k in self.ks}
        intervals["map@r"] = mean_interval(self.average_precision)
        return RetrievalMetrics(
            recall_at={k: self.hits[k] / self.queries for k in self.ks},
            map_at_r=float(self.average_precision.mean()),
            recall_at_radius={k: self.near_hits[k] / self.queries for k in self.ks},
            recall_radius_m=self.radius_m,
            top1=ErrorSummary.of(self.top1_errors),
            locate=ErrorSummary.of(self.locate_errors),
            queries=int(self.queries),
            eligible=int(self.eligible),
            intervals=intervals,
        )


def _ranked_neighbours(
    vectors: np.ndarray, chunk: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """(len(chunk), depth) gallery indices by descending similarity, self excluded, and
    their similarities."""
    similarity = vectors[chunk] @ vectors.T
    similarity[np.arange(chunk.size), chunk] = -np.inf
    n = similarity.shape[1]
    threshold = np.partition(similarity, n - depth, axis=1)[:, n - depth, None]
    keep = similarity >= threshold
    crowded = np.flatnonzero(np.count_nonzero(keep, axis=1) > depth)
    if crowded.size:
        keep[crowded] = _lowest_index_ties(similarity[crowded], threshold[crowded], depth)
    # Each row now keeps exactly `depth` columns, listed in index order (1-d nonzero is fast).
    columns = (np.flatnonzero(keep) % n).reshape(chunk.size, depth)
    scores = np.take_along_axis(similarity, columns, axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _lowest_index_ties(similarity: np.ndarray, threshold: np.ndarray, depth: int) -> np.ndarray:
    """Mask of each row's `depth` best columns, ties at the threshold to lower indices."""
    above = similarity > threshold
    at_threshold = similarity == threshold
    wanted_ties = depth - np.count_nonzero(above, axis=1, keepdims=True)
    return above | (at_threshold & (np.cumsum(at_threshold, axis=1) <= wanted_ties))


def average_precision_at_r(is_relevant: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """AP@R per query (Musgrave et al. 2020): mean precision at relevant ranks within R.

    IS_RELEVANT: (queries, depth) ranked hits, depth >= R; RELEVANT: R of each query.
    """
    ranks = np.arange(1, is_relevant.shape[1] + 1)
    within_r = is_relevant & (ranks <= relevant[:, None])
    precision = np.cumsum(within_r, axis=1) / ranks
    return (precision * within_r).sum(axis=1) / relevant


def _gallery_vectors(embeddings: np.ndarray, normalize: bool) -> np.ndarray:
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2:
        raise RetrievalInputError(f"embeddings must have shape (N, D), got {vectors.shape}")
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise RetrievalInputError(f"embedding row {row} is not finite")
    if not normalize:
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1).astype(np.float32)


def _label_codes(labels: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(labels)
    if values.shape != (n,):
        raise RetrievalInputError(f"labels must have shape ({n},), got {values.shape}")
    return np.unique(values, return_inverse=True)[1].reshape(n)


def _coordinates(lat: np.ndarray, lon: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    for name, values in (("lat", lat), ("lon", lon)):
        if np.shape(values) != (n,):
            raise RetrievalInputError(f"{name} must have shape ({n},), got {np.shape(values)}")
    return validate_latlon(lat, lon)


def _checked_ks(ks: Sequence[int]) -> tuple[int, ...]:
    checked = tuple(sorted({int(k) for k in ks}))
    if not checked or checked[0] < 1 or any(int(k) != k for k in ks):
        raise RetrievalInputError(f"ks must be positive integers, got {list(ks)}")
    return checked
