import numpy as np
import pandas as pd
import pytest

from geotriplet_assets.geodesy import (
    EARTH_RADIUS_M,
    CoordinateError,
    great_circle_m,
    unit_vectors,
)
from geotriplet_assets.geography.targets import (
    TARGET_COLUMNS,
    TargetsInputError,
    build_targets,
    target_index_of_images,
)

METRE_DEG = np.degrees(1 / EARTH_RADIUS_M)


def images_frame(rows: list[tuple[int, int, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["dataset_id", "target_id", "lat", "lon"])
    return frame.astype({"dataset_id": np.int64, "target_id": np.int64})


def test_one_wild_image_does_not_move_the_centre():
    lat0, lon0 = 48.137, 11.575
    offsets_m = [(0, 0), (4, -3), (-5, 2), (2, 5), (-1, -4)]
    rows = [
        (1, 7, lat0 + dy * METRE_DEG, lon0 + dx * METRE_DEG / np.cos(np.radians(lat0)))
        for dx, dy in offsets_m
    ]
    rows.append((1, 7, lat0 + 0.02, lon0 - 0.03))  # a wild coordinate ~3 km away
    targets = build_targets(images_frame(rows))
    assert len(targets) == 1
    centre = targets.iloc[0]
    assert centre["n_images"] == 6
    assert float(great_circle_m(centre["lat"], centre["lon"], lat0, lon0)) < 5.0
    wild = float(great_circle_m(centre["lat"], centre["lon"], lat0 + 0.02, lon0 - 0.03))
    assert centre["spread_m"] == pytest.approx(wild)
    assert wild > 2500


def test_target_across_the_antimeridian_stays_there():
    rows = [(3, 1, -16.5, 179.99995), (3, 1, -16.5, -179.99995), (3, 1, -16.50003, 180.0)]
    centre = build_targets(images_frame(rows)).iloc[0]
    assert abs(centre["lon"]) > 179.999
    assert abs(centre["lat"] + 16.5) < 1e-4
    distances = great_circle_m(
        centre["lat"], centre["lon"], [r[2] for r in rows], [r[3] for r in rows]
    )
    assert distances.max() < 10.0
    assert centre["spread_m"] == pytest.approx(distances.max())


def test_target_at_the_pole():
    rows = [(1, 1, 89.99999, lon) for lon in (-170.0, -50.0, 70.0)]
    centre = build_targets(images_frame(rows)).iloc[0]
    assert centre["lat"] > 89.99999
    assert centre["spread_m"] < 2.0  # images lie 1.1 m from the pole


def test_two_images_centre_is_the_midpoint():
    rows = [(1, 1, 0.0, 0.0), (1, 1, 0.0, 0.001)]
    centre = build_targets(images_frame(rows)).iloc[0]
    assert centre["lon"] == pytest.approx(0.0005)
    assert centre["spread_m"] == pytest.approx(float(great_circle_m(0, 0, 0, 0.001)) / 2)


def test_targets_are_keyed_by_dataset_and_target_sorted_with_dtypes():
    rows = [
        (2, 5, 10.0, 20.0),
        (1, 5, 30.0, 40.0),
        (2, 5, 10.0, 20.0001),
        (1, 9, -30.0, -40.0),
        (1, 5, 30.0, 40.0),
        (1, 5, 30.0001, 40.0),
    ]
    images = images_frame(rows)
    targets = build_targets(images)
    assert list(targets.columns) == list(TARGET_COLUMNS)
    assert targets[["dataset_id", "target_id"]].to_numpy().tolist() == [[1, 5], [1, 9], [2, 5]]
    assert targets["target_index"].tolist() == [0, 1, 2]
    assert targets["n_images"].tolist() == [3, 1, 2]
    assert targets["spread_m"].iloc[1] == 0.0
    for column in ("target_index", "dataset_id", "target_id", "n_images"):
        assert targets[column].dtype == np.int64
    for column in ("lat", "lon", "x", "y", "z", "spread_m"):
        assert targets[column].dtype == np.float64
    np.testing.assert_allclose(
        targets[["x", "y", "z"]].to_numpy(),
        unit_vectors(targets["lat"], targets["lon"]),
        atol=1e-15,
    )
    assert target_index_of_images(images, targets).tolist() == [2, 0, 2, 1, 0, 0]


def test_result_does_not_depend_on_image_order():
    rng = np.random.default_rng(5)
    n_targets = 500
    counts = rng.integers(2, 8, n_targets)
    target_ids = np.repeat(rng.permutation(10_000)[:n_targets], counts)
    lat = np.repeat(rng.uniform(-60, 60, n_targets), counts) + rng.normal(0, 1e-4, counts.sum())
    lon = np.repeat(rng.uniform(-179, 179, n_targets), counts) + rng.normal(0, 1e-4, counts.sum())
    images = pd.DataFrame(
        {"dataset_id": target_ids % 3, "target_id": target_ids, "lat": lat, "lon": lon}
    )
    shuffled = images.sample(frac=1.0, random_state=1).reset_index(drop=True)
    pd.testing.assert_frame_equal(build_targets(images), build_targets(shuffled))
    targets = build_targets(shuffled)
    mapped = targets.iloc[target_index_of_images(shuffled, targets)]
    assert (mapped["target_id"].to_numpy() == shuffled["target_id"].to_numpy()).all()
    assert (mapped["n_images"].sum()) == (counts**2).sum()


def test_empty_images_give_empty_targets():
    targets = build_targets(images_frame([]))
    assert list(targets.columns) == list(TARGET_COLUMNS)
    assert len(targets) == 0
    assert targets["target_index"].dtype == np.int64
    assert targets["lat"].dtype == np.float64


def test_bad_inputs_are_named():
    with pytest.raises(TargetsInputError, match="target_id"):
        build_targets(pd.DataFrame({"dataset_id": [1], "lat": [0.0], "lon": [0.0]}))
    with pytest.raises(TargetsInputError, match="'target_id' must hold integers"):
        build_targets(
            pd.DataFrame({"dataset_id": [1], "target_id": [1.5], "lat": [0.0], "lon": [0.0]})
        )
    with pytest.raises(CoordinateError, match=r"latitude .* 91\.0"):
        build_targets(images_frame([(1, 1, 0.0, 0.0), (1, 2, 91.0, 0.0)]))


def test_image_without_target_is_reported():
    targets = build_targets(images_frame([(1, 1, 0.0, 0.0)]))
    with pytest.raises(TargetsInputError, match=r"image row 1 .* \(1, 2\)"):
        target_index_of_images(images_frame([(1, 1, 0.0, 0.0), (1, 2, 0.0, 0.0)]), targets)
