import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN

from geotriplet_assets.evaluation.location_errors import ErrorSummary
from geotriplet_assets.evaluation.retrieval_metrics import (
    RetrievalInputError,
    RetrievalMetrics,
    evaluate_retrieval,
)
from geotriplet_assets.geodesy import CoordinateError, great_circle_m


def on_circle(degrees: list[float]) -> np.ndarray:
    """2-d unit vectors whose cosine similarity falls as the angle between them grows."""
    radians = np.radians(degrees)
    return np.column_stack((np.cos(radians), np.sin(radians))).astype(np.float32)


def clustered(n_labels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy clusters of 1 to 6 images per label, 16-d, hard enough to miss often."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_labels)
    labels = np.repeat(np.arange(n_labels), sizes)
    centres = rng.normal(size=(n_labels, 16))
    embeddings = centres[labels] + rng.normal(scale=1.2, size=(labels.size, 16))
    order = rng.permutation(labels.size)
    return embeddings[order].astype(np.float32), labels[order]


def zeros(n: int) -> np.ndarray:
    return np.zeros(n)


def test_three_targets_of_two_images_hand_computed() -> None:
    # A at 0° and 10°, B at 25° and 100°, C at 115° and 125°: b1's nearest is a2, b2's is c1.
    embeddings = on_circle([0, 10, 25, 100, 115, 125])
    labels = np.array([0, 0, 1, 1, 2, 2])
    lat = np.array([0.0, 0.0, 0.0, 0.0, 0.02, 0.02])
    lon = np.array([0.0, 0.0, 0.01, 0.01, 0.01, 0.01])
    metrics = evaluate_retrieval(embeddings, labels, lat, lon)

    assert metrics.queries == 6
    assert metrics.recall_at[1] == pytest.approx(4 / 6)
    assert metrics.recall_at[5] == 1.0
    assert metrics.map_at_r == pytest.approx(4 / 6)  # R = 1: AP@R is the top-1 hit
    b_to_a = float(great_circle_m(0.0, 0.01, 0.0, 0.0))
    b_to_c = float(great_circle_m(0.0, 0.01, 0.02, 0.01))
    assert metrics.median_error_m == 0.0
    assert metrics.p90_error_m == pytest.approx((b_to_a + b_to_c) / 2)


def test_map_at_r_with_two_relevant_items_hand_computed() -> None:
    # A at 0, 10, 50 and B at 32, 100, 110: AP@2 per query 1/2, 1/2, 1/4, 0, 1/2, 1/2.
    embeddings = on_circle([0, 10, 50, 32, 100, 110])
    labels = np.array(["a", "a", "a", "b", "b", "b"])
    metrics = evaluate_retrieval(embeddings, labels, zeros(6), zeros(6), ks=(1, 2, 5))

    assert metrics.map_at_r == pytest.approx(2.25 / 6)
    assert metrics.recall_at == pytest.approx({1: 4 / 6, 2: 5 / 6, 5: 1.0})
    assert metrics.median_error_m == 0.0


def test_matches_pytorch_metric_learning() -> None:
    embeddings, labels = clustered(n_labels=120, seed=3)
    calculator = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=CustomKNN(CosineSimilarity()),
    )
    expected = calculator.get_accuracy(embeddings, labels)
    metrics = evaluate_retrieval(embeddings, labels, zeros(labels.size), zeros(labels.size))

    assert 0.2 < metrics.recall_at[1] < 0.9  # neither trivial nor hopeless
    assert metrics.recall_at[1] == pytest.approx(expected["precision_at_1"], abs=1e-9)
    assert metrics.map_at_r == pytest.approx(expected["mean_average_precision_at_r"], abs=1e-9)
    assert metrics.queries == int((np.bincount(labels)[labels] > 1).sum())


def test_chunking_does_not_change_results() -> None:
    embeddings, labels = clustered(n_labels=60, seed=5)
    lat = np.random.default_rng(0).uniform(-60, 60, labels.size)
    lon = np.random.default_rng(1).uniform(-180, 180, labels.size)
    whole = evaluate_retrieval(embeddings, labels, lat, lon)
    for budget in (1, 16 * labels.size * 7):
        chunked = evaluate_retrieval(embeddings, labels, lat, lon, memory_budget_bytes=budget)
        assert chunked.as_dict() == pytest.approx(whole.as_dict())


def test_ties_rank_the_lower_gallery_index_first() -> None:
    labels = np.array([0, 0, 1, 1])
    # Every similarity is equal: each query's first neighbour is its lowest other index.
    for embeddings in (np.ones((4, 3)), np.zeros((4, 3))):
        metrics = evaluate_retrieval(embeddings, labels, zeros(4), zeros(4), ks=(1,))
        assert metrics.recall_at == {1: 0.5}
        assert metrics.map_at_r == 0.5


def test_set_smaller_than_largest_k() -> None:
    embeddings = on_circle([0, 90, 180])
    metrics = evaluate_retrieval(embeddings, np.array([1, 2, 1]), zeros(3), zeros(3))

    assert metrics.recall_at == {1: 0.0, 5: 1.0, 10: 1.0, 20: 1.0}
    assert metrics.queries == 2


def test_singleton_targets_are_distractors_not_queries() -> None:
    # The singleton at 5° sits between the pair, so both queries miss at rank 1.
    embeddings = on_circle([0, 5, 10])
    metrics = evaluate_retrieval(embeddings, np.array([0, 9, 0]), zeros(3), zeros(3), ks=(1, 2))

    assert metrics.queries == 2
    assert metrics.recall_at == {1: 0.0, 2: 1.0}
    assert metrics.map_at_r == 0.0


@pytest.mark.parametrize("n", [0, 1, 4])
def test_no_valid_query_gives_nan(n: int) -> None:
    metrics = evaluate_retrieval(np.ones((n, 2)), np.arange(n), zeros(n), zeros(n))

    assert metrics.queries == 0
    counts = ("queries", "queries_eligible")
    assert all(math.isnan(value) for key, value in metrics.as_dict().items() if key not in counts)


def test_without_normalisation_the_dot_product_ranks() -> None:
    embeddings = np.array([[1.0, 0.0], [10.0, 10.0], [1.0, 0.1]])
    labels = np.array([0, 1, 0])
    cosine = evaluate_retrieval(embeddings, labels, zeros(3), zeros(3), ks=(1,))
    dot = evaluate_retrieval(embeddings, labels, zeros(3), zeros(3), ks=(1,), normalize=False)

    assert cosine.recall_at == {1: 1.0}
    assert dot.recall_at == {1: 0.0}


def test_as_dict_is_flat_and_prefixed() -> None:
    top1 = ErrorSummary(10.0, 20.0, {25.0: 0.5, 100.0: 0.75, 1000.0: 1.0})
    locate = ErrorSummary(5.0, 15.0, {25.0: 0.625, 100.0: 0.875, 1000.0: 1.0})
    metrics = RetrievalMetrics(
        {5: 0.5, 1: 0.25},
        0.125,
        top1,
        locate,
        queries=8,
        eligible=20,
        intervals={"recall@1": (0.1, 0.6), "recall@5": (0.2, 0.8), "map@r": (0.05, 0.2)},
    )

    assert metrics.as_dict("val/") == {
        "val/recall@1": 0.25,
        "val/recall@5": 0.5,
        "val/map@r": 0.125,
        "val/median_error_m": 10.0,
        "val/p90_error_m": 20.0,
        "val/within_25m": 0.5,
        "val/within_100m": 0.75,
        "val/within_1000m": 1.0,
        "val/locate_median_error_m": 5.0,
        "val/locate_p90_error_m": 15.0,
        "val/locate_within_25m": 0.625,
        "val/locate_within_100m": 0.875,
        "val/locate_within_1000m": 1.0,
        "val/recall@1_ci95_low": 0.1,
        "val/recall@1_ci95_high": 0.6,
        "val/map@r_ci95_low": 0.05,
        "val/map@r_ci95_high": 0.2,
        "val/queries": 8.0,
        "val/queries_eligible": 20.0,
    }


def test_the_estimate_from_the_best_hits_beats_a_lone_far_top_hit() -> None:
    # q and h2 (one building) at 0 and 1.5 degrees; h1, the top hit of both, stands 5 km away;
    # h3 and h4, just behind it in similarity, stand with q and h2.
    embeddings = on_circle([0, 1.0, 1.5, 2.1, 2.5])
    labels = np.array([0, 1, 0, 2, 3])
    metre = 1 / 111_195
    lat = 40.0 + np.array([0.0, 5000.0, 3.0, -4.0, 6.0]) * metre
    lon = np.full(5, -80.0)
    metrics = evaluate_retrieval(embeddings, labels, lat, lon, ks=(1,))

    assert metrics.queries == 2
    assert metrics.top1.median_m == pytest.approx(5000.0, rel=0.01)
    assert metrics.top1.within[1000.0] == 0.0
    assert metrics.locate.median_m < 10.0
    assert metrics.locate.within[25.0] == 1.0
    # with the lone hit as the only one it is located from, the estimate is the top hit
    alone = evaluate_retrieval(embeddings, labels, lat, lon, ks=(1,), locate_k=1)
    assert alone.locate.as_dict() == pytest.approx(alone.top1.as_dict())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embeddings": np.ones(4)}, "shape"),
        ({"embeddings": np.array([[1.0], [np.nan], [1.0], [1.0]])}, "row 1"),
        ({"labels": np.arange(3)}, "labels"),
        ({"lat": zeros(5)}, "lat"),
        ({"ks": (0, 5)}, "ks"),
        ({"locate_k": 0}, "locate_k"),
        ({"cluster_radius_m": -1.0}, "cluster_radius_m"),
        ({"ks": ()}, "ks"),
        ({"memory_budget_bytes": 0}, "memory_budget_bytes"),
        ({"max_queries": 0}, "max_queries"),
        ({"recall_radius_m": 0.0}, "recall_radius_m"),
    ],
)
def test_bad_input_is_named(change: dict, message: str) -> None:
    arguments = {
        "embeddings": np.ones((4, 1)),
        "labels": np.arange(4),
        "lat": zeros(4),
        "lon": zeros(4),
    } | change
    with pytest.raises(RetrievalInputError, match=message):
        evaluate_retrieval(**arguments)


def test_bad_coordinates_are_rejected() -> None:
    with pytest.raises(CoordinateError, match="latitude"):
        evaluate_retrieval(np.ones((2, 1)), np.zeros(2), np.array([0.0, 95.0]), zeros(2))


def test_a_query_sample_searches_the_whole_gallery_and_brackets_the_full_figures() -> None:
    embeddings, labels = clustered(600, seed=3)
    lat = lon = zeros(len(labels))
    full = evaluate_retrieval(embeddings, labels, lat, lon, ks=(1, 5))
    sample = evaluate_retrieval(embeddings, labels, lat, lon, ks=(1, 5), max_queries=400, seed=7)

    assert (sample.queries, sample.eligible) == (400, full.eligible)
    assert full.queries == full.eligible > 400
    assert sample == evaluate_retrieval(
        embeddings, labels, lat, lon, ks=(1, 5), max_queries=400, seed=7
    )
    assert (
        sample.recall_at
        != evaluate_retrieval(
            embeddings, labels, lat, lon, ks=(1, 5), max_queries=400, seed=8
        ).recall_at
    )
    for name, value in (("recall@1", full.recall_at[1]), ("map@r", full.map_at_r)):
        low, high = sample.intervals[name]
        assert low < value < high, name
        assert high - low < 0.15
    # a query of the sample ranks the whole gallery: the same answer as in the full run
    one = evaluate_retrieval(embeddings, labels, lat, lon, ks=(1,), max_queries=1, seed=1)
    assert one.queries == 1 and one.recall_at[1] in (0.0, 1.0)


def test_recall_at_a_radius_counts_a_hit_near_the_query_whatever_its_label() -> None:
    # a and b are one building 1 km apart; c, another building, stands 10 m from a and is
    # a's top hit; b's top hit is a (its own label, 1 km away)
    embeddings = on_circle([0, 5, -3])
    lat = np.array([50.0, 50.0 + 1000 / 111_195, 50.0 + 10 / 111_195])
    lon = np.zeros(3)
    metrics = evaluate_retrieval(embeddings, np.array([0, 0, 1]), lat, lon, ks=(1, 2))

    assert metrics.recall_at == {1: 0.5, 2: 1.0}
    assert metrics.recall_at_radius == {1: 0.5, 2: 0.5}
    assert metrics.as_dict()["recall@1_25m"] == 0.5
    wide = evaluate_retrieval(
        embeddings, np.array([0, 0, 1]), lat, lon, ks=(1,), recall_radius_m=2000.0
    )
    assert wide.recall_at_radius == {1: 1.0}
    assert "recall@1_2000m" in wide.as_dict()
