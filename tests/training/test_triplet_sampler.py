import json
from dataclasses import dataclass

import numpy as np
import pytest

from geotriplet_assets.geodesy import unit_vectors
from geotriplet_assets.geography.neighbours import exact_knn
from geotriplet_assets.training.triplet_sampler import (
    TripletBatch,
    TripletSampler,
    TripletSamplingError,
    quantile_band_edges,
)
from geotriplet_assets.training.ucb_bandit import UCBBandit


@dataclass(frozen=True)
class SplitData:
    image_target: np.ndarray
    neighbours: np.ndarray
    distances_m: np.ndarray


def _split(lat: np.ndarray, lon: np.ndarray, k: int, seed: int) -> SplitData:
    """Targets at lat/lon with 1-5 images each (shuffled rows) and their exact KNN graph."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, size=len(lat))
    image_target = rng.permutation(np.repeat(np.arange(len(lat)), counts))
    graph = exact_knn(unit_vectors(lat, lon), k, workers=1)
    return SplitData(image_target, graph.indices.astype(np.int64), graph.distances_m)


def _random_split(n_targets: int = 300, k: int = 12, seed: int = 0) -> SplitData:
    rng = np.random.default_rng(seed)
    lat = 43.6 + rng.random(n_targets) * 0.1
    lon = -79.4 + rng.random(n_targets) * 0.1
    return _split(lat, lon, k, seed)


def _clustered_split(n_targets: int = 300, k: int = 12, seed: int = 1) -> SplitData:
    rng = np.random.default_rng(seed)
    centres = rng.random((6, 2)) * [2.0, 2.0] + [45.0, 5.0]
    cluster = rng.integers(0, len(centres), size=n_targets)
    jitter = rng.normal(scale=0.002, size=(n_targets, 2))
    points = centres[cluster] + jitter
    return _split(points[:, 0], points[:, 1], k, seed)


def _sampler(data: SplitData, seed: int = 7, num_bands: int = 4, **kwargs: bool) -> TripletSampler:
    return TripletSampler(
        data.image_target,
        data.neighbours,
        data.distances_m,
        num_bands=num_bands,
        seed=seed,
        **kwargs,
    )


def _all_arms(sampler: TripletSampler, per_arm: int) -> np.ndarray:
    return np.repeat(np.flatnonzero(sampler.available), per_arm)


def _assert_same(a: TripletBatch, b: TripletBatch) -> None:
    for field in ("anchor", "positive", "negative", "band", "self_positive"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


DATASETS = {"random": _random_split, "clustered": _clustered_split}


@pytest.fixture(params=sorted(DATASETS))
def data(request: pytest.FixtureRequest) -> SplitData:
    return DATASETS[request.param]()


def test_positives_share_the_anchor_target_and_differ_unless_single(data: SplitData) -> None:
    sampler = _sampler(data)
    batch = sampler.sample(_all_arms(sampler, 2000))
    target = data.image_target
    np.testing.assert_array_equal(target[batch.positive], target[batch.anchor])
    single = np.bincount(target)[target[batch.anchor]] == 1
    np.testing.assert_array_equal(batch.self_positive, single)
    assert (batch.positive == batch.anchor).tolist() == single.tolist()
    assert 0 < batch.self_positive.sum() < len(batch)
    assert sampler.num_single_image_targets == int((np.bincount(target) == 1).sum())


def test_negatives_fall_in_the_requested_band_and_never_share_the_target(
    data: SplitData,
) -> None:
    sampler = _sampler(data)
    assert sampler.available.all()
    bands = _all_arms(sampler, 2000)
    batch = sampler.sample(bands)
    anchor_t = data.image_target[batch.anchor]
    negative_t = data.image_target[batch.negative]
    assert (anchor_t != negative_t).all()
    np.testing.assert_array_equal(batch.band, bands)
    np.testing.assert_array_equal(sampler.band_of(anchor_t, negative_t), bands)
    far = bands == sampler.num_bands
    in_row = (data.neighbours[anchor_t] == negative_t[:, None]).any(axis=1)
    assert not in_row[far].any()
    assert in_row[~far].all()


def test_band_distances_lie_between_the_band_edges(data: SplitData) -> None:
    sampler = _sampler(data)
    batch = sampler.sample(np.repeat(np.arange(sampler.num_bands), 500))
    anchor_t = data.image_target[batch.anchor]
    negative_t = data.image_target[batch.negative]
    column = (data.neighbours[anchor_t] == negative_t[:, None]).argmax(axis=1)
    distance = data.distances_m[anchor_t, column]
    edges = sampler.band_edges_m
    assert (distance >= edges[batch.band]).all()
    assert (distance <= edges[batch.band + 1]).all()


def test_every_pair_of_a_band_can_be_drawn() -> None:
    data = _random_split(n_targets=40, k=6)
    sampler = _sampler(data, num_bands=3)
    anchors = np.repeat(np.arange(40), 6)
    in_band_1 = sampler.band_of(anchors, data.neighbours.ravel()) == 1
    negatives = data.neighbours.ravel()
    expected = set(zip(anchors[in_band_1].tolist(), negatives[in_band_1].tolist(), strict=True))
    batch = sampler.sample(np.full(20_000, 1))
    drawn = set(
        zip(
            data.image_target[batch.anchor].tolist(),
            data.image_target[batch.negative].tolist(),
            strict=True,
        )
    )
    assert drawn == expected


def test_band_edges_are_distance_quantiles(data: SplitData) -> None:
    sampler = _sampler(data, num_bands=4)
    edges = sampler.band_edges_m
    assert edges[0] == data.distances_m.min()
    assert edges[-1] == pytest.approx(data.distances_m.max())
    shares = (
        np.bincount(
            np.searchsorted(edges[1:-1], data.distances_m.ravel(), side="right"), minlength=4
        )
        / data.distances_m.size
    )
    np.testing.assert_allclose(shares, 0.25, atol=0.01)


def test_tied_quantiles_give_strictly_increasing_edges_and_empty_bands() -> None:
    distances = np.full((5, 3), 250.0, dtype=np.float32)
    edges = quantile_band_edges(distances, 3)
    assert (np.diff(edges) > 0).all()
    neighbours = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2]])
    sampler = TripletSampler(np.arange(5), neighbours, distances, num_bands=3, seed=0)
    assert sampler.available.tolist() == [True, False, False, True]
    batch = sampler.sample(np.array([0, 3, 0, 3]))
    assert (sampler.band_of(batch.anchor, batch.negative) == [0, 3, 0, 3]).all()
    with pytest.raises(TripletSamplingError, match="band 1 is unavailable"):
        sampler.sample(np.array([0, 1]))


def test_far_band_falls_back_to_exact_draw_when_rejection_rarely_succeeds() -> None:
    data = _random_split(n_targets=60, k=58, seed=3)
    sampler = _sampler(data, num_bands=2)
    assert sampler.available[sampler.num_bands]
    batch = sampler.sample(np.full(3000, sampler.num_bands))
    anchor_t = data.image_target[batch.anchor]
    negative_t = data.image_target[batch.negative]
    only_far = np.array(
        [np.setdiff1d(np.arange(60), [t, *row])[0] for t, row in enumerate(data.neighbours)]
    )
    np.testing.assert_array_equal(negative_t, only_far[anchor_t])


def test_far_band_is_unavailable_when_all_targets_are_neighbours() -> None:
    data = _random_split(n_targets=20, k=19)
    sampler = _sampler(data, num_bands=2)
    assert not sampler.available[sampler.num_bands]
    with pytest.raises(TripletSamplingError, match="unavailable"):
        sampler.sample(np.array([sampler.num_bands]))


def test_without_far_band_arms_are_the_distance_bands() -> None:
    sampler = _sampler(_random_split(), num_bands=3, far_band=False)
    assert sampler.num_arms == 3
    with pytest.raises(TripletSamplingError, match="outside"):
        sampler.sample(np.array([3]))


def test_single_target_split_has_no_available_band() -> None:
    sampler = TripletSampler(
        np.zeros(3, np.int64), np.empty((1, 0), np.int64), np.empty((1, 0)), num_bands=3, seed=0
    )
    assert not sampler.available.any()
    assert sampler.band_of(np.array([0]), np.array([0])).tolist() == [-1]
    for band in range(sampler.num_arms):
        with pytest.raises(TripletSamplingError, match="unavailable"):
            sampler.sample(np.array([band]))
    with pytest.raises(TripletSamplingError, match="two targets"):
        sampler.sample_uniform_random(4)


def test_uniform_random_negatives_cover_other_targets(data: SplitData) -> None:
    sampler = _sampler(data)
    batch = sampler.sample_uniform_random(20_000)
    anchor_t = data.image_target[batch.anchor]
    negative_t = data.image_target[batch.negative]
    assert (anchor_t != negative_t).all()
    assert (batch.band == -1).all()
    np.testing.assert_array_equal(data.image_target[batch.positive], anchor_t)
    assert len(np.unique(negative_t)) == len(data.neighbours)


def test_same_seed_same_batches_and_different_seed_different() -> None:
    data = _random_split()
    first, second, other = _sampler(data, seed=5), _sampler(data, seed=5), _sampler(data, seed=6)
    bands = _all_arms(first, 100)
    for _ in range(3):
        batch = first.sample(bands)
        _assert_same(batch, second.sample(bands))
        assert not np.array_equal(batch.negative, other.sample(bands).negative)
    _assert_same(first.sample_uniform_random(50), second.sample_uniform_random(50))


def test_state_dict_resume_continues_the_same_stream() -> None:
    data = _clustered_split()
    sampler = _sampler(data, seed=11)
    bands = _all_arms(sampler, 64)
    sampler.sample(bands)
    state = json.loads(json.dumps(sampler.state_dict()))
    expected = [sampler.sample(bands) for _ in range(2)]
    resumed = _sampler(data, seed=999)
    resumed.load_state_dict(state)
    for batch in expected:
        _assert_same(batch, resumed.sample(bands))
    with pytest.raises(TripletSamplingError, match="n_targets"):
        _sampler(_random_split(n_targets=50)).load_state_dict(state)


def test_bandit_credit_reaches_the_band_that_produced_each_triplet() -> None:
    data = _clustered_split()
    sampler = _sampler(data)
    bandit = UCBBandit(sampler.num_arms, alpha=2.0, available=sampler.available, decay=1.0)
    rewarded_band = 2
    for _ in range(5):
        batch = sampler.sample(bandit.allocate(512))
        anchor_t = data.image_target[batch.anchor]
        negative_t = data.image_target[batch.negative]
        measured_band = sampler.band_of(anchor_t, negative_t)
        bandit.credit(batch.band, (measured_band == rewarded_band).astype(float))
        bandit.update()
    means = bandit.summary()["mean_reward"]
    assert means[rewarded_band] == 1.0
    assert [m for arm, m in enumerate(means) if arm != rewarded_band] == [0.0] * 4
    assert bandit.summary()["share"][rewarded_band] > 0.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_target": np.array([0, 1, 2, 5])}, r"\[0, 4\)"),
        ({"image_target": np.array([0, 1, 2, 2])}, "no image"),
        ({"image_target": np.array([0.0, 1.0, 2.0, 3.0])}, "image_target must hold integers"),
        ({"distances_m": np.array([[3.0], [1.0], [2.0], [np.nan]])}, "finite"),
        ({"neighbours": np.array([[1, 2], [0, 1], [0, 1], [0, 1]])}, "target 1 lists itself"),
        ({"distances_m": np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0], [1.0, 2.0]])}, "row 1"),
    ],
)
def test_bad_input_is_rejected_with_a_specific_error(
    change: dict[str, np.ndarray], message: str
) -> None:
    arguments = {
        "image_target": np.array([0, 1, 2, 3]),
        "neighbours": np.array([[1, 2], [0, 2], [0, 1], [0, 1]]),
        "distances_m": np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]),
    }
    arguments |= change
    if arguments["distances_m"].shape != arguments["neighbours"].shape:
        arguments["neighbours"] = arguments["neighbours"][:, :1]
    with pytest.raises(TripletSamplingError, match=message):
        TripletSampler(**arguments, num_bands=2, seed=0)
