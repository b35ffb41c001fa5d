"""Build the FAISS index of a bundle and measure its recall@10 against exact search.

Vectors are unit length, so inner product is cosine similarity. Up to
`exact_max_vectors` the index is exact (flat); above it HNSW up to `hnsw_max_vectors`, then
IVF-PQ with nlist = 4 sqrt(N) (`chosen_index_type`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np

from geotriplet_assets.config import IndexConfig

RECALL_DEPTH = 10
_IVF_TRAINING_POINTS_PER_LIST = 64


class IndexBuildError(ValueError):
    """The vectors or the index settings cannot make an index."""


@dataclass(frozen=True)
class BuiltIndex:
    index: faiss.Index
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    recall_at_10: float = 1.0
    recall_queries: int = 0
    build_seconds: float = 0.0  # training and adding, not the recall measurement
    tuning: list[tuple[int, float]] = field(default_factory=list)  # IVF (nprobe, recall@10)

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "metric": "inner_product",
            "params": self.params,
            "recall_at_10": self.recall_at_10,
            "recall_queries": self.recall_queries,
            "build_seconds": round(self.build_seconds, 3),
            **({"nprobe_tuning": [list(step) for step in self.tuning]} if self.tuning else {}),
        }


def chosen_index_type(settings: IndexConfig, count: int) -> str:
    """The configured type, or by size: exact search while it is affordable, then HNSW while
    its build fits (923 s at 1 M on 2 cores, 1.25 GiB bundle), then IVF-PQ (36 s at 1 M,
    0.54 GiB, its candidates re-scored exactly; docs/benchmarks.md)."""
    if settings.type != "auto":
        return settings.type
    if count <= settings.exact_max_vectors:
        return "flat"
    if settings.approximate != "auto":
        return settings.approximate
    return "hnsw" if count <= settings.hnsw_max_vectors else "ivfpq"


def build_index(vectors: np.ndarray, settings: IndexConfig, *, seed: int = 0) -> BuiltIndex:
    """An index over VECTORS ((N, E) float32, unit rows; ids are row numbers)."""
    vectors = _checked_vectors(vectors)
    count, dim = vectors.shape
    kind = chosen_index_type(settings, count)
    started = time.perf_counter()
    if kind == "flat":
        index: faiss.Index = faiss.IndexFlatIP(dim)
        params: dict[str, Any] = {}
    elif kind == "hnsw":
        index, params = _hnsw(dim, settings)
    else:
        index, params = _ivfpq(vectors, settings, seed)
    index.add(vectors)
    seconds = time.perf_counter() - started
    if kind == "flat":
        return BuiltIndex(index, kind, params, 1.0, 0, seconds)
    sample = RecallSample.of(vectors, settings.recall_queries, seed)
    rerank = params.get("rerank", 1)
    if kind == "ivfpq" and settings.ivf_target_recall is not None:
        recall, tuning = _tune_nprobe(index, vectors, sample, rerank, settings.ivf_target_recall)
        params["nprobe"] = index.nprobe
    else:
        recall, tuning = sample.recall_at_10(index, vectors, rerank), []
    return BuiltIndex(index, kind, params, recall, len(sample.rows), seconds, tuning)


def _tune_nprobe(
    index: faiss.IndexIVF,
    vectors: np.ndarray,
    sample: RecallSample,
    rerank: int,
    target: float,
) -> tuple[float, list[tuple[int, float]]]:
    """Double INDEX's nprobe from its configured value until the measured recall@10 reaches
    TARGET or every list is probed (autofaiss tunes its search parameters the same way): how
    far a query's neighbours spread over the lists depends on the embedding, not only on N."""
    tried = [(int(index.nprobe), sample.recall_at_10(index, vectors, rerank))]
    while tried[-1][1] < target and index.nprobe < index.nlist:
        index.nprobe = min(2 * index.nprobe, index.nlist)
        tried.append((int(index.nprobe), sample.recall_at_10(index, vectors, rerank)))
    return tried[-1][1], tried


@dataclass(frozen=True)
class RecallSample:
    """Seeded query rows of the indexed vectors and their exact top 10, computed once."""

    rows: np.ndarray
    queries: np.ndarray
    truth: np.ndarray

    @classmethod
    def of(cls, vectors: np.ndarray, queries: int, seed: int = 0) -> RecallSample:
        count = len(vectors)
        rows = np.sort(
            np.random.default_rng(seed).choice(count, size=min(queries, count), replace=False)
        )
        sample = np.ascontiguousarray(vectors[rows])
        exact = faiss.IndexFlatIP(vectors.shape[1])
        exact.add(vectors)
        _, truth = exact.search(sample, min(RECALL_DEPTH, count))
        return cls(rows, sample, truth)

    def recall_at_10(self, index: faiss.Index, vectors: np.ndarray, rerank: int = 1) -> float:
        """Mean overlap of INDEX's top 10 with the exact top 10, searched as the service
        does: RERANK * 10 candidates from INDEX, re-scored exactly."""
        depth = self.truth.shape[1]
        _, candidates = index.search(self.queries, min(depth * rerank, len(vectors)))
        found = [
            _best_exact(vectors, query, rows[rows >= 0], depth)
            for query, rows in zip(self.queries, candidates, strict=True)
        ]
        hits = sum(len(np.intersect1d(t, f)) for t, f in zip(self.truth, found, strict=True))
        return float(hits / (depth * len(self.queries)))


def measure_recall_at_10(
    index: faiss.Index, vectors: np.ndarray, queries: int, seed: int = 0, *, rerank: int = 1
) -> tuple[float, int]:
    """Mean overlap of INDEX's top 10 with exact top 10, for QUERIES rows sampled from VECTORS,
    searched as the service does: RERANK * 10 candidates from INDEX, re-scored exactly."""
    sample = RecallSample.of(vectors, queries, seed)
    return sample.recall_at_10(index, vectors, rerank), len(sample.rows)


def _best_exact(
    vectors: np.ndarray, query: np.ndarray, rows: np.ndarray, depth: int
) -> np.ndarray:
    scores = vectors[rows] @ query
    return rows[np.argsort(-scores, kind="stable")[:depth]]


def _hnsw(dim: int, settings: IndexConfig) -> tuple[faiss.Index, dict[str, Any]]:
    index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = settings.hnsw_ef_construction
    index.hnsw.efSearch = settings.hnsw_ef_search
    params = {
        "m": settings.hnsw_m,
        "ef_construction": settings.hnsw_ef_construction,
        "ef_search": settings.hnsw_ef_search,
    }
    return index, params


def _ivfpq(
    vectors: np.ndarray, settings: IndexConfig, seed: int
) -> tuple[faiss.Index, dict[str, Any]]:
    count, dim = vectors.shape
    if dim % settings.pq_m:
        raise IndexBuildError(
            f"serving.index.pq_m ({settings.pq_m}) must divide the embedding size ({dim})"
        )
    nlist = settings.ivf_nlist or max(1, int(4 * math.sqrt(count)))
    training_points = max(nlist, 2**settings.pq_nbits) * _IVF_TRAINING_POINTS_PER_LIST
    if count < max(nlist, 2**settings.pq_nbits):
        raise IndexBuildError(
            f"IVF-PQ needs at least max(nlist, 2**pq_nbits) = {max(nlist, 2**settings.pq_nbits)} "
            f"vectors to train, got {count}: use serving.index.type flat or hnsw"
        )
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(
        quantizer, dim, nlist, settings.pq_m, settings.pq_nbits, faiss.METRIC_INNER_PRODUCT
    )
    rows = np.random.default_rng(seed).choice(
        count, size=min(count, training_points), replace=False
    )
    index.train(np.ascontiguousarray(vectors[np.sort(rows)]))
    index.nprobe = min(settings.ivf_nprobe, nlist)
    index.own_fields = True
    quantizer.this.disown()
    params = {
        "nlist": nlist,
        "nprobe": index.nprobe,
        "pq_m": settings.pq_m,
        "pq_nbits": settings.pq_nbits,
        "rerank": settings.ivf_rerank,
    }
    return index, params


def _checked_vectors(vectors: np.ndarray) -> np.ndarray:
    if vectors.ndim != 2 or len(vectors) == 0:
        raise IndexBuildError(f"need a non-empty (N, E) array of vectors, got {vectors.shape}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise IndexBuildError("vectors contain NaN or infinite values")
    return vectors
