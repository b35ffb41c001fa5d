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

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "metric": "inner_product",
            "params": self.params,
            "recall_at_10": self.recall_at_10,
            "recall_queries": self.recall_queries,
            "build_seconds": round(self.build_seconds, 3),
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
    recall, queries = measure_recall_at_10(
        index, vectors, settings.recall_queries, seed, rerank=params.get("rerank", 1)
    )
    return BuiltIndex(index, kind, params, recall, queries, seconds)


def measure_recall_at_10(
    index: faiss.Index, vectors: np.ndarray, queries: int, seed: int = 0, *, rerank: int = 1
) -> tuple[float, int]:
    """Mean overlap of INDEX's top 10 with exact top 10, for QUERIES rows sampled from VECTORS,
    searched as the service does: RERANK * 10 candidates from INDEX, re-scored exactly."""
    count = len(vectors)
    depth = min(RECALL_DEPTH, count)
    rows = np.random.default_rng(seed).choice(count, size=min(queries, count), replace=False)
    sample = np.ascontiguousarray(vectors[np.sort(rows)])
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(sample, depth)
    _, candidates = index.search(sample, min(depth * rerank, count))
    found = [
        _best_exact(vectors, query, rows[rows >= 0], depth)
        for query, rows in zip(sample, candidates, strict=True)
    ]
    hits = sum(len(np.intersect1d(t, f)) for t, f in zip(truth, found, strict=True))
    return float(hits / (depth * len(sample))), len(sample)


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
