import numpy as np
import pytest

from geotriplet_assets.geodesy import unit_vectors
from geotriplet_assets.geography.neighbour_checks import find_neighbour_problems
from geotriplet_assets.geography.neighbour_store import (
    SplitNeighbours,
    read_neighbours,
    write_neighbours,
)
from geotriplet_assets.geography.neighbours import exact_knn


@pytest.fixture
def city() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    lat = 48.85 + rng.normal(0, 0.01, 300)
    lon = 2.35 + rng.normal(0, 0.01, 300)
    return lat, lon


def _graph(lat: np.ndarray, lon: np.ndarray, members: np.ndarray, k: int) -> SplitNeighbours:
    return SplitNeighbours.from_graph(
        members, exact_knn(unit_vectors(lat[members], lon[members]), k)
    )


def test_an_exact_graph_has_no_problems(city: tuple[np.ndarray, np.ndarray]) -> None:
    lat, lon = city
    members = np.arange(0, 300, 2)
    problems = find_neighbour_problems(_graph(lat, lon, members, 10), lat, lon)
    assert problems.total == 0


def test_each_kind_of_damage_is_counted(city: tuple[np.ndarray, np.ndarray]) -> None:
    lat, lon = city
    graph = _graph(lat, lon, np.arange(300), 8)
    neighbours, distances = graph.neighbours.copy(), graph.distances_m.copy()
    distances[0, 0] = distances[0, -1] + 5.0  # out of order and wrong
    neighbours[1, 0] = graph.target_index[1]
    distances[2, 3] *= 1.5
    damaged = SplitNeighbours(graph.target_index, neighbours, distances)
    problems = find_neighbour_problems(damaged, lat, lon)
    assert problems.unsorted_rows >= 1
    assert problems.self_edges == 1
    assert problems.distance_mismatches >= 2


def test_a_missing_reverse_edge_is_found(city: tuple[np.ndarray, np.ndarray]) -> None:
    lat, lon = city
    graph = _graph(lat, lon, np.arange(300), 8)
    # replace target 0's nearest neighbour with a far target: 0 is then missing from a list
    # where it belongs (its old nearest neighbour still lists it, but 0 no longer lists it)
    neighbours = graph.neighbours.copy()
    nearest = neighbours[0, 0]
    row_of_nearest = int(np.flatnonzero(graph.target_index == nearest)[0])
    listed = neighbours[row_of_nearest] == 0
    assert listed.any()
    far = np.argsort(-graph.distances_m[row_of_nearest])[0]
    neighbours[row_of_nearest, listed] = neighbours[row_of_nearest, far]
    broken = SplitNeighbours(graph.target_index, neighbours, graph.distances_m)
    assert find_neighbour_problems(broken, lat, lon).missing_reverse_edges >= 1


def test_tiny_splits_have_nothing_to_check() -> None:
    lat, lon = np.array([10.0]), np.array([20.0])
    graph = _graph(lat, lon, np.array([0]), 5)
    assert graph.neighbours.shape == (1, 0)
    assert find_neighbour_problems(graph, lat, lon).total == 0


def test_neighbour_graphs_round_trip_through_hdf5(tmp_path, city) -> None:
    lat, lon = city
    graphs = {
        "train": _graph(lat, lon, np.arange(0, 200), 5),
        "val": _graph(lat, lon, np.arange(200, 201), 5),
    }
    path = tmp_path / "neighbours" / "geo.h5"
    write_neighbours(path, graphs, k=5)
    loaded = read_neighbours(path)
    assert set(loaded) == {"train", "val"}
    np.testing.assert_array_equal(loaded["train"].neighbours, graphs["train"].neighbours)
    np.testing.assert_array_equal(loaded["train"].distances_m, graphs["train"].distances_m)
    assert loaded["val"].neighbours.shape == (1, 0)
    assert [p.name for p in path.parent.iterdir()] == ["geo.h5"]
    with pytest.raises(FileNotFoundError, match="materialise geo_neighbours"):
        read_neighbours(tmp_path / "missing.h5")
