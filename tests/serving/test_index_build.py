import faiss
import numpy as np
import pytest

from geotriplet_assets.config import IndexConfig
from geotriplet_assets.serving.index_build import (
    IndexBuildError,
    build_index,
    chosen_index_type,
    measure_recall_at_10,
)


def unit_vectors(count: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_auto_is_exact_up_to_the_configured_size_then_approximate():
    settings = IndexConfig(exact_max_vectors=100, hnsw_max_vectors=1000)
    assert chosen_index_type(settings, 100) == "flat"
    assert chosen_index_type(settings, 101) == "hnsw"
    assert chosen_index_type(settings, 1000) == "hnsw"
    assert chosen_index_type(settings, 1001) == "ivfpq"
    defaults = IndexConfig()
    assert [chosen_index_type(defaults, n) for n in (200_000, 500_000, 1_000_000)] == [
        "flat",
        "hnsw",
        "ivfpq",
    ]
    assert chosen_index_type(IndexConfig(approximate="hnsw"), 25_000_000) == "hnsw"
    assert (
        chosen_index_type(IndexConfig(exact_max_vectors=100, approximate="ivfpq"), 101) == "ivfpq"
    )
    assert chosen_index_type(IndexConfig(type="hnsw"), 5) == "hnsw"


def test_flat_index_answers_exact_inner_product_search():
    vectors = unit_vectors(500)
    built = build_index(vectors, IndexConfig())
    assert built.type == "flat" and built.recall_at_10 == 1.0
    scores, rows = built.index.search(vectors[:5], 3)
    assert rows[:, 0].tolist() == [0, 1, 2, 3, 4]
    expected = np.sort(vectors[:5] @ vectors.T, axis=1)[:, ::-1][:, :3]
    np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_hnsw_recall_is_measured_against_exact_search():
    vectors = unit_vectors(3000)
    built = build_index(vectors, IndexConfig(type="hnsw", recall_queries=200))
    assert built.type == "hnsw"
    assert built.recall_queries == 200
    assert 0.9 <= built.recall_at_10 <= 1.0
    assert built.params == {"m": 32, "ef_construction": 200, "ef_search": 128}
    assert built.index.hnsw.efSearch == 128
    entry = built.manifest_entry()
    assert entry["build_seconds"] == round(built.build_seconds, 3) and built.build_seconds > 0


def test_ivfpq_recall_is_lower_than_exact_and_measured_honestly():
    vectors = unit_vectors(5000)
    settings = IndexConfig(
        type="ivfpq", pq_m=8, ivf_nlist=32, ivf_nprobe=4, ivf_rerank=10, ivf_target_recall=None
    )
    built = build_index(vectors, settings)
    assert built.type == "ivfpq" and built.tuning == []
    assert built.params["nlist"] == 32 and built.params["nprobe"] == 4
    assert 0.0 < built.recall_at_10 < 1.0


def test_ivfpq_reranking_recovers_recall_lost_to_compression():
    vectors = unit_vectors(5000)
    settings = {
        "type": "ivfpq",
        "pq_m": 4,
        "ivf_nlist": 32,
        "ivf_nprobe": 8,
        "ivf_target_recall": None,
    }
    plain = build_index(vectors, IndexConfig(**settings, ivf_rerank=1))
    reranked = build_index(vectors, IndexConfig(**settings, ivf_rerank=10))
    assert reranked.params["rerank"] == 10
    assert plain.recall_at_10 < 0.5 < reranked.recall_at_10
    # the same index searched as the service does: 10x the candidates, re-scored exactly
    assert measure_recall_at_10(plain.index, vectors, 1000, rerank=10) == (
        reranked.recall_at_10,
        1000,
    )


def test_ivf_nprobe_is_doubled_until_the_measured_recall_meets_the_target():
    vectors = unit_vectors(5000)
    settings = {"type": "ivfpq", "pq_m": 8, "ivf_nlist": 64, "ivf_nprobe": 1, "ivf_rerank": 10}
    fixed = build_index(vectors, IndexConfig(**settings, ivf_target_recall=None))
    tuned = build_index(vectors, IndexConfig(**settings, ivf_target_recall=0.9))

    assert fixed.params["nprobe"] == 1 and fixed.recall_at_10 < 0.9
    probes = [nprobe for nprobe, _ in tuned.tuning]
    assert probes[0] == 1 and probes == sorted(probes) and len(probes) > 1
    assert probes[:-1] == [2**i for i in range(len(probes) - 1)]
    assert tuned.recall_at_10 >= 0.9 > tuned.tuning[-2][1]
    assert tuned.params["nprobe"] == tuned.index.nprobe == probes[-1]
    entry = tuned.manifest_entry()
    assert entry["nprobe_tuning"][-1] == [probes[-1], tuned.recall_at_10]
    # what the manifest records is what the service gets: its recall, measured again
    assert measure_recall_at_10(tuned.index, vectors, 1000, rerank=10)[0] == tuned.recall_at_10
    # a target no nprobe reaches stops at every list probed
    capped = build_index(
        vectors, IndexConfig(**{**settings, "ivf_rerank": 1}, ivf_target_recall=1.0)
    )
    assert capped.params["nprobe"] == 64 and capped.recall_at_10 < 1.0


def test_a_deliberately_poor_index_gets_a_poor_recall():
    vectors = unit_vectors(2000)
    crude = faiss.IndexHNSWFlat(vectors.shape[1], 4, faiss.METRIC_INNER_PRODUCT)
    crude.hnsw.efSearch = 1
    crude.add(vectors)
    recall, queries = measure_recall_at_10(crude, vectors, 300)
    assert queries == 300 and recall < 0.9


def test_bad_vectors_and_settings_are_refused():
    with pytest.raises(IndexBuildError, match="non-empty"):
        build_index(np.zeros((0, 8), dtype=np.float32), IndexConfig())
    broken = unit_vectors(10)
    broken[3, 0] = np.nan
    with pytest.raises(IndexBuildError, match="NaN"):
        build_index(broken, IndexConfig())
    with pytest.raises(IndexBuildError, match="must divide"):
        build_index(unit_vectors(5000), IndexConfig(type="ivfpq", pq_m=7))
    with pytest.raises(IndexBuildError, match="at least"):
        build_index(unit_vectors(100), IndexConfig(type="ivfpq", pq_m=8))
