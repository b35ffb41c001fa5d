import numpy as np
import pytest

from geotriplet_assets.geodesy import (
    EARTH_RADIUS_M,
    CoordinateError,
    great_circle_m,
    latlon_from_unit_vectors,
    unit_vectors,
)
from geotriplet_assets.geography.neighbours import (
    NeighbourGraph,
    brute_force_knn,
    exact_knn,
    nearest_distance_m,
)
from tests.factories.geometry import pairs_within_m


def uniform_sphere(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return unit_vectors(lat, rng.uniform(-180, 180, n))


def clustered_with_duplicates(seed: int) -> np.ndarray:
    """Three street-scale clusters (one across the antimeridian) and 30 copies of one point."""
    rng = np.random.default_rng(seed)
    centres = [(51.5, -0.12), (-16.5, 179.999), (35.7, 139.7)]
    lat = np.concatenate([rng.normal(la, 0.002, 500) for la, _ in centres])
    lon = np.concatenate([rng.normal(lo, 0.002, 500) for _, lo in centres])
    lon = (lon + 180) % 360 - 180
    vectors = unit_vectors(lat, lon)
    vectors[100:130] = vectors[99]
    return vectors


def assert_same_graph(graph: NeighbourGraph, reference: NeighbourGraph) -> None:
    assert graph.indices.shape == reference.indices.shape
    np.testing.assert_array_equal(graph.distances_m, reference.distances_m)
    d = graph.distances_m
    unique = np.ones(d.shape, dtype=bool)
    unique[:, 1:] &= d[:, 1:] != d[:, :-1]
    unique[:, :-1] &= d[:, :-1] != d[:, 1:]
    unique &= d != d[:, -1:]  # the last tie group may continue beyond column k
    assert unique.mean() > 0.5
    np.testing.assert_array_equal(graph.indices[unique], reference.indices[unique])


def assert_well_formed(graph: NeighbourGraph, n: int, k: int) -> None:
    assert graph.indices.shape == graph.distances_m.shape == (n, k)
    assert graph.indices.dtype == np.int32
    assert graph.distances_m.dtype == np.float32
    rows = np.arange(n)[:, None]
    assert not (graph.indices == rows).any(), "a point is its own neighbour"
    assert (np.diff(graph.distances_m, axis=1) >= 0).all()
    assert ((graph.indices >= 0) & (graph.indices < n)).all()
    if k:
        assert all(len(set(row)) == k for row in graph.indices.tolist())


def test_matches_brute_force_on_uniform_points():
    vectors = uniform_sphere(2000, seed=1)
    graph = exact_knn(vectors, 12)
    assert_well_formed(graph, 2000, 12)
    assert_same_graph(graph, brute_force_knn(vectors, 12))


def test_matches_brute_force_on_clustered_points_with_duplicates():
    vectors = clustered_with_duplicates(seed=2)
    graph = exact_knn(vectors, 10, chunk_size=97)
    assert_well_formed(graph, len(vectors), 10)
    assert_same_graph(graph, brute_force_knn(vectors, 10))
    assert (graph.distances_m[99:130] == 0).all()
    assert np.isin(graph.indices[99:130], np.arange(99, 130)).all()


def test_distances_are_great_circle_metres():
    vectors = clustered_with_duplicates(seed=3)
    graph = exact_knn(vectors, 5)
    lat, lon = latlon_from_unit_vectors(vectors)
    expected = great_circle_m(lat[:, None], lon[:, None], lat[graph.indices], lon[graph.indices])
    np.testing.assert_allclose(graph.distances_m, expected, rtol=1e-6, atol=1e-3)
    antimeridian = slice(500, 1000)
    assert graph.distances_m[antimeridian].max() < 2000  # not a trip round the globe


def test_chunking_does_not_change_the_result():
    vectors = uniform_sphere(1000, seed=4)
    whole = exact_knn(vectors, 7, chunk_size=1_000_000)
    chunked = exact_knn(vectors, 7, chunk_size=13, workers=1)
    np.testing.assert_array_equal(whole.distances_m, chunked.distances_m)
    np.testing.assert_array_equal(whole.indices, chunked.indices)


@pytest.mark.parametrize("knn", [exact_knn, brute_force_knn])
@pytest.mark.parametrize(
    ("n", "k", "k_eff"), [(0, 5, 0), (1, 5, 0), (2, 5, 1), (4, 3, 3), (5, 0, 0)]
)
def test_tiny_inputs(knn, n, k, k_eff):
    vectors = uniform_sphere(n, seed=5)
    graph = knn(vectors, k)
    assert_well_formed(graph, n, k_eff)
    assert graph.k == k_eff
    if n == 2:
        assert graph.indices.tolist() == [[1], [0]]
        assert graph.distances_m[0, 0] == graph.distances_m[1, 0] > 0


def test_two_identical_points_are_each_others_neighbour():
    vectors = unit_vectors([10.0, 10.0, 10.001], [20.0, 20.0, 20.0])
    graph = exact_knn(vectors, 1)
    assert graph.indices[:2, 0].tolist() == [1, 0]
    assert graph.distances_m[:2, 0].tolist() == [0.0, 0.0]


def test_bad_input_is_rejected():
    with pytest.raises(CoordinateError, match=r"\(N, 3\)"):
        exact_knn(np.zeros((4, 2)), 2)
    with pytest.raises(CoordinateError, match="row 1"):
        exact_knn(np.array([[1.0, 0, 0], [np.nan, 0, 0]]), 1)
    with pytest.raises(ValueError, match="k must be non-negative"):
        exact_knn(uniform_sphere(3, seed=0), -1)


def test_pairs_within_radius():
    step = np.degrees(10.0 / EARTH_RADIUS_M)
    vectors = unit_vectors(np.zeros(5), np.arange(5) * step)  # 10 m apart along the equator
    assert pairs_within_m(vectors, 15.0).tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert len(pairs_within_m(vectors, 25.0)) == 7
    assert pairs_within_m(vectors[:1], 100.0).shape == (0, 2)


def test_nearest_distance_to_reference_set():
    step = np.degrees(10.0 / EARTH_RADIUS_M)
    vectors = unit_vectors(np.zeros(4), np.arange(4) * step)
    metres = nearest_distance_m(vectors[2:], vectors[:1])
    np.testing.assert_allclose(metres, [20.0, 30.0], rtol=1e-6)
    bounded = nearest_distance_m(vectors[2:], vectors[:1], upper_bound_m=25.0)
    assert bounded[0] == pytest.approx(20.0, rel=1e-6)
    assert np.isinf(bounded[1])
    assert np.isinf(nearest_distance_m(vectors, vectors[:0])).all()
