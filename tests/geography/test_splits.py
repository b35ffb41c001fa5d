import itertools

import numpy as np
import pytest

from geotriplet_assets.geodesy import EARTH_RADIUS_M, unit_vectors
from geotriplet_assets.geography.splits import (
    SPLIT_NAMES,
    SplitConfigError,
    allocate_counts,
    hilbert_index_3d,
    split_targets,
    verify_buffer,
)

CITIES = [(51.5, -0.12), (40.7, -74.0), (-33.9, 151.2), (-16.8, 180.0), (64.1, -21.9)]


def street_targets(
    n: int, lat0: float, lon0: float, rng: np.random.Generator, block_m: float = 150.0
) -> tuple[np.ndarray, np.ndarray]:
    """n targets 20-60 m apart along a rotated street grid around (lat0, lon0)."""
    side = np.sqrt(n * 40.0 * block_m / 2)
    lines = np.arange(-side / 2, side / 2, block_m)
    points = []
    for offset, along_x in itertools.product(lines, (True, False)):
        along = -side / 2 + np.cumsum(rng.uniform(20, 60, int(side / 20) + 2))
        along = along[along < side / 2]
        across = np.full(along.size, offset)
        points.append(np.column_stack((along, across) if along_x else (across, along)))
    xy = np.concatenate(points)
    xy = xy[rng.permutation(len(xy))[:n]]
    angle = rng.uniform(0, np.pi / 2)
    xy = xy @ np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lat = lat0 + np.degrees(xy[:, 1] / EARTH_RADIUS_M)
    lon = lon0 + np.degrees(xy[:, 0] / (EARTH_RADIUS_M * np.cos(np.radians(lat0))))
    return lat, (lon + 180) % 360 - 180


def street_data(per_city: int, cities: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    lat, lon = zip(*(street_targets(per_city, *c, rng) for c in CITIES[:cities]), strict=True)
    n = per_city * cities
    dataset_id = np.repeat(np.arange(cities, dtype=np.int64), per_city)
    target_id = rng.permutation(n).astype(np.int64)
    return dataset_id, target_id, unit_vectors(np.concatenate(lat), np.concatenate(lon))


def random_data(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    dataset_id = rng.integers(0, 4, n)
    target_id = rng.permutation(n * 3)[:n].astype(np.int64)
    vectors = unit_vectors(rng.uniform(-60, 60, n), rng.uniform(-180, 180, n))
    return dataset_id, target_id, vectors


def labels_by_key(dataset_id, target_id, labels) -> dict[tuple[int, int], str]:
    return {
        (int(d), int(t)): str(s) for d, t, s in zip(dataset_id, target_id, labels, strict=True)
    }


@pytest.mark.parametrize("buffer_m", [0.0, 100.0])
def test_reproducible_and_seed_dependent(buffer_m):
    data = street_data(1500, 2, seed=1)
    first = split_targets(*data, seed=7, buffer_m=buffer_m)
    again = split_targets(*data, seed=7, buffer_m=buffer_m)
    other = split_targets(*data, seed=8, buffer_m=buffer_m)
    np.testing.assert_array_equal(first.labels, again.labels)
    assert (first.labels != other.labels).mean() > 0.1
    assert first.seed == 7
    assert first.buffer_m == buffer_m


@pytest.mark.parametrize("buffer_m", [0.0, 100.0])
def test_independent_of_row_order(buffer_m):
    dataset_id, target_id, vectors = street_data(1500, 2, seed=2)
    shuffle = np.random.default_rng(0).permutation(len(target_id))
    straight = split_targets(dataset_id, target_id, vectors, buffer_m=buffer_m)
    shuffled = split_targets(
        dataset_id[shuffle], target_id[shuffle], vectors[shuffle], buffer_m=buffer_m
    )
    assert labels_by_key(dataset_id, target_id, straight.labels) == labels_by_key(
        dataset_id[shuffle], target_id[shuffle], shuffled.labels
    )


def test_ratios_are_met_on_10k_targets():
    assignment = split_targets(*random_data(10_000, seed=3), ratios=(0.8, 0.05, 0.15))
    assert assignment.counts == {"train": 8000, "val": 500, "test": 1500, "excluded": 0}
    assert sorted(set(assignment.labels.tolist())) == ["test", "train", "val"]
    assert assignment.ratios == (0.8, 0.05, 0.15)


def test_same_target_id_in_two_datasets_are_two_targets():
    vectors = unit_vectors([0.0, 0.0, 1.0], [0.0, 0.0, 1.0])
    assignment = split_targets(np.array([1, 2, 1]), np.array([5, 5, 6]), vectors)
    assert assignment.counts == {"train": 1, "val": 1, "test": 1, "excluded": 0}


@pytest.mark.parametrize("buffer_m", [0.0, 50.0])
@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, (0, 0, 0)), (1, (1, 0, 0)), (2, (1, 1, 0)), (3, (1, 1, 1)), (4, (2, 1, 1))],
)
def test_tiny_inputs(n, expected, buffer_m):
    dataset_id, target_id, vectors = random_data(n, seed=4)
    assignment = split_targets(dataset_id, target_id, vectors, buffer_m=buffer_m)
    assert assignment.labels.shape == (n,)
    assert tuple(assignment.counts[s] for s in SPLIT_NAMES) == expected


def test_every_split_gets_a_target_from_three_on():
    for n in range(3, 40):
        counts = allocate_counts(n, (0.9, 0.05, 0.05))
        assert counts.sum() == n
        assert (counts >= 1).all()
    assert allocate_counts(10, (0.8, 0.2, 0.0)).tolist() == [8, 2, 0]
    assert allocate_counts(5, (0.0, 0.0, 1.0)).tolist() == [0, 0, 5]


@pytest.mark.parametrize(
    "ratios", [(0.5, 0.5, 0.5), (0.7, 0.3), (1.1, -0.05, -0.05), (float("nan"), 0.5, 0.5)]
)
def test_bad_ratios_are_named(ratios):
    with pytest.raises(SplitConfigError, match=r"ratios .* got \("):
        split_targets(*random_data(10, seed=0), ratios=ratios)


def test_bad_inputs_are_named():
    dataset_id, target_id, vectors = random_data(5, seed=0)
    with pytest.raises(SplitConfigError, match="same number"):
        split_targets(dataset_id, target_id[:4], vectors)
    target_id[3] = target_id[1]
    dataset_id[3] = dataset_id[1]
    with pytest.raises(SplitConfigError, match="appears twice"):
        split_targets(dataset_id, target_id, vectors)
    with pytest.raises(SplitConfigError, match="buffer_m"):
        split_targets(*random_data(5, seed=0), buffer_m=-1.0)


def test_buffer_is_respected_with_few_exclusions_on_streets():
    data = street_data(10_000, 1, seed=5)
    plain = split_targets(*data, buffer_m=0.0)
    assert verify_buffer(plain.labels, data[2], 100.0) > 1000
    assignment = split_targets(*data, buffer_m=100.0)
    assert verify_buffer(assignment.labels, data[2], 100.0) == 0
    assert len(assignment.labels) == 10_000
    assert sum(assignment.counts.values()) == 10_000
    assert assignment.counts["excluded"] == (assignment.labels == "excluded").sum()
    assert assignment.counts["excluded"] < 0.06 * 10_000
    kept = 10_000 - assignment.counts["excluded"]
    for name, ratio in zip(SPLIT_NAMES, (0.7, 0.15, 0.15), strict=True):
        assert assignment.counts[name] / kept == pytest.approx(ratio, abs=0.02)
    assert "100 m" in assignment.excluded_reason


def test_buffer_over_several_cities_including_the_antimeridian():
    data = street_data(4000, 5, seed=6)
    assignment = split_targets(*data, buffer_m=100.0, ratios=(0.6, 0.2, 0.2))
    assert verify_buffer(assignment.labels, data[2], 100.0) == 0
    assert assignment.counts["excluded"] < 0.05 * 20_000
    for name in ("val", "test"):
        assert len(np.unique(data[0][assignment.labels == name])) >= 2, name


def test_verify_buffer_counts_violations():
    step = np.degrees(1.0 / EARTH_RADIUS_M)
    vectors = unit_vectors(np.zeros(4), np.array([0.0, 50.0, 120.0, 500.0]) * step)
    labels = np.array(["train", "val", "test", "excluded"])
    assert verify_buffer(labels, vectors, 100.0) == 1
    assert verify_buffer(labels, vectors, 130.0) == 2
    assert verify_buffer(labels, vectors, 40.0) == 0
    assert verify_buffer(np.array(["val", "test", "val", "test"]), vectors, 1e6) == 0
    with pytest.raises(SplitConfigError, match="unknown split label"):
        verify_buffer(np.array(["train", "valid", "test", "test"]), vectors, 100.0)


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_hilbert_curve_visits_every_cell_through_neighbours(bits):
    side = 2**bits
    cells = np.array(list(itertools.product(range(side), repeat=3)), dtype=np.uint64)
    index = hilbert_index_3d(cells, bits)
    assert sorted(index.tolist()) == list(range(side**3))
    path = cells[np.argsort(index)].astype(np.int64)
    assert (np.abs(np.diff(path, axis=0)).sum(axis=1) == 1).all()
