from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.spatial import distance

from geotriplet_assets.catalogue.legacy_dataset import (
    BAD_COORDINATES,
    DUPLICATE_IMAGE_ID,
    NON_FINITE_EMBEDDING,
    NOT_VALID,
    ZERO_EMBEDDING,
    LegacyDatasetError,
    read_legacy_dataset,
    read_legacy_embeddings,
)
from tests.factories.legacy_dataset import write_legacy_dataset

SPLITS = {"train": [7, 11, 12], "val": [13], "test": [14]}
PATCHES = [0, 1, 0, 1, 0, 0, 1, 0, 0]


def images_frame() -> pd.DataFrame:
    """Nine images of six targets; TargetID 7 exists in DatasetID 1 and in DatasetID 2."""
    return pd.DataFrame(
        {
            "DatasetID": [1, 1, 1, 1, 2, 2, 2, 2, 2],
            "TargetID": [7, 7, 11, 11, 7, 12, 12, 13, 14],
            "PatchID": PATCHES,
            "StreetViewID": [100, 101, 102, 103, 104, 105, 106, 107, 108],
            "Image filename": [
                f"{i:04d}_{j}.jpg" for i, j in enumerate([0, 1, 0, 1, 0, 0, 1, 0, 0])
            ],
            "Subpath": ["0001/0001"] * 4 + ["0002/0002"] * 5,
            "Target Point Latitude": [40.0, 40.0, 40.1, 40.1, -33.8, -33.9, -33.9, -34.0, -34.1],
            "Target Point Longitude": [
                -74.0,
                -74.0,
                -74.1,
                -74.1,
                151.2,
                151.3,
                151.3,
                151.4,
                151.5,
            ],
        }
    )


def backbone(n: int, width: int = 6) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, width)).astype(np.float32) + 0.1


def write_like_original(
    path: Path,
    frame: pd.DataFrame,
    embeddings: np.ndarray,
    failed_rows: list[int],
    knn_k: int = 50,
    dtype: type = np.float32,
) -> None:
    """Lay out a file the way the original preprocessing did, step by step, with h5py only."""
    f = h5py.File(path, "w")
    f.create_group("images")
    f.create_group("metadata")
    f.create_group("splits")
    for split_name, targets in SPLITS.items():
        f["splits"].create_dataset(split_name, data=np.array(targets), compression="lzf")
    for col in frame.columns:
        values = frame[col].to_numpy()  # pandas 2, which the original ran on, gave object here
        if values.dtype == object:
            string = h5py.string_dtype(encoding="utf-8")
            f["metadata"].create_dataset(col, data=values, dtype=string, compression="lzf")
        else:
            f["metadata"].create_dataset(col, data=values, compression="lzf")
    geo_targets = np.sort(frame["TargetID"].unique())
    geo = (
        frame.groupby("TargetID")[["Target Point Latitude", "Target Point Longitude"]]
        .first()
        .loc[geo_targets]
        .values.astype(np.float32)
    )
    f.attrs["backbone_output_size"] = embeddings.shape[1]
    stored = f.create_dataset(
        "backbone_embeddings", shape=embeddings.shape, dtype=dtype, compression="lzf"
    )
    good = [row for row in range(len(frame)) if row not in failed_rows]
    stored[good] = embeddings[good]  # failed rows keep HDF5's zero fill value
    for split_name, targets in SPLITS.items():
        order = np.sort(targets).astype(np.int64)
        points = geo[np.searchsorted(geo_targets, order)]
        n, k = len(order), min(knn_k, len(order) - 1)
        f["metadata"].create_dataset(
            f"target_id_order_{split_name}", data=order, compression="lzf"
        )
        if k == 0:
            layout = {}
        else:
            layout = {"chunks": (min(1024, n), k), "compression": "gzip", "compression_opts": 4}
        indices = f["metadata"].create_dataset(
            f"knn_indices_geo_{split_name}", shape=(n, k), dtype="int32", **layout
        )
        distances = f["metadata"].create_dataset(
            f"knn_distances_geo_{split_name}", shape=(n, k), dtype="float16", **layout
        )
        block = np.log1p(distance.cdist(points, points, metric="euclidean").astype(np.float32))
        for row in range(n):
            block[row, row] = np.inf
            nearest = np.argsort(block[row], kind="stable")[:k]
            indices[row] = nearest.astype(np.int32)
            distances[row] = block[row, nearest].astype(np.float16)
    f["images"].create_dataset("valid_indices", data=np.asarray(good, np.int64), compression="lzf")
    f.close()


def write_with_module(path: Path, frame: pd.DataFrame, embeddings: np.ndarray, **extra) -> None:
    write_legacy_dataset(
        path,
        embeddings=embeddings,
        dataset_id=frame["DatasetID"],
        target_id=frame["TargetID"],
        lat=frame["Target Point Latitude"],
        lon=frame["Target Point Longitude"],
        splits=SPLITS,
        patch_id=frame["PatchID"],
        street_view_id=frame["StreetViewID"],
        image_filename=list(frame["Image filename"]),
        subpath=list(frame["Subpath"]),
        **extra,
    )


def layout(path: Path) -> dict[str, tuple]:
    """Every dataset's dtype, shape, filter and values, plus the root attributes."""
    found: dict[str, tuple] = {}
    with h5py.File(path, "r") as f:
        found["attrs"] = tuple(sorted((key, int(value)) for key, value in f.attrs.items()))

        def visit(name: str, item: object) -> None:
            if isinstance(item, h5py.Dataset):
                values = item[()]
                values = values.tolist() if values.dtype != object else list(values)
                found[name] = (str(item.dtype), item.shape, item.chunks, item.compression, values)

        f.visititems(visit)
    return found


def test_module_writer_matches_the_original_layout(tmp_path: Path) -> None:
    frame, embeddings = images_frame(), backbone(9)
    write_like_original(tmp_path / "original.h5", frame, embeddings, failed_rows=[])
    write_with_module(tmp_path / "module.h5", frame, embeddings)

    original = layout(tmp_path / "original.h5")
    assert "metadata/knn_distances_geo_train" in original
    assert layout(tmp_path / "module.h5") == original


def test_round_trip_keeps_every_row(tmp_path: Path) -> None:
    frame, embeddings = images_frame(), backbone(9)
    path = tmp_path / "dataset.h5"
    write_with_module(path, frame, embeddings)
    data = read_legacy_dataset(path)

    assert data.dropped_rows == 0
    assert set(data.dropped_reason.values()) == {0}
    assert data.dim == 6 and data.dtype == np.float32
    np.testing.assert_array_equal(read_legacy_embeddings(path, data.source_row), embeddings)
    assert data.image_ids[0] == "0001/0001/0000_0"
    assert data.files[0] == "0001/0001/0000_0.jpg"
    np.testing.assert_array_equal(data.patch_id, frame["PatchID"])
    np.testing.assert_array_equal(data.street_view_id, frame["StreetViewID"])
    assert data.image_ids[-1] == "0002/0002/0008_0"
    np.testing.assert_array_equal(data.dataset_id, frame["DatasetID"])
    np.testing.assert_array_equal(data.target_id, frame["TargetID"])
    np.testing.assert_array_equal(data.lat, frame["Target Point Latitude"])
    np.testing.assert_array_equal(data.lon, frame["Target Point Longitude"])
    np.testing.assert_array_equal(data.source_row, np.arange(9))


def test_target_id_is_unique_only_within_a_dataset(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    write_with_module(path, images_frame(), backbone(9))
    codes = read_legacy_dataset(path).target_codes()

    assert codes[0] == codes[1]  # DatasetID 1, TargetID 7
    assert codes[4] != codes[0]  # DatasetID 2, TargetID 7 is another building
    assert len(set(codes.tolist())) == 6


def test_original_file_drops_failed_images(tmp_path: Path) -> None:
    frame, embeddings = images_frame(), backbone(9)
    path = tmp_path / "dataset.h5"
    write_like_original(path, frame, embeddings, failed_rows=[2], dtype=np.float16)
    with h5py.File(path, "a") as f:  # a batch that failed after its images decoded
        f["backbone_embeddings"][5] = 0.0
    data = read_legacy_dataset(path)

    assert data.dropped_rows == 2
    assert data.dropped_reason[NOT_VALID] == 1
    assert data.dropped_reason[ZERO_EMBEDDING] == 1
    assert data.source_row.tolist() == [0, 1, 3, 4, 6, 7, 8]
    assert data.dropped[NOT_VALID].tolist() == [2] and data.dropped[ZERO_EMBEDDING].tolist() == [5]
    assert data.dtype == np.float16
    np.testing.assert_array_equal(
        read_legacy_embeddings(path, data.source_row),
        embeddings[data.source_row].astype(np.float16).astype(np.float32),
    )


def test_knn_datasets_are_not_needed(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    write_with_module(path, images_frame(), backbone(9))
    with h5py.File(path, "a") as f:
        for name in [key for key in f["metadata"] if key.startswith(("knn_", "target_id_order"))]:
            del f["metadata"][name]

    assert read_legacy_dataset(path).dropped_rows == 0


def test_rows_with_bad_values_or_a_repeated_file_are_dropped_and_splits_ignored(
    tmp_path: Path,
) -> None:
    frame, embeddings = images_frame(), backbone(9)
    frame.loc[3, "Target Point Latitude"] = np.nan
    frame.loc[8, "Image filename"] = frame.loc[7, "Image filename"]
    embeddings[6, 2] = np.inf
    path = tmp_path / "dataset.h5"
    write_with_module(path, frame, embeddings)
    with h5py.File(path, "a") as f:
        f["metadata/TargetID"][5] = 99  # in no split of the file: the pipeline splits anyway
        del f["splits"]
    data = read_legacy_dataset(path)

    assert data.dropped_reason == {
        NOT_VALID: 0,
        BAD_COORDINATES: 1,
        ZERO_EMBEDDING: 0,
        NON_FINITE_EMBEDDING: 1,
        DUPLICATE_IMAGE_ID: 1,
    }
    assert data.dropped_rows == 3
    assert data.source_row.tolist() == [0, 1, 2, 4, 5, 7]
    assert data.target_id.tolist() == [7, 7, 11, 7, 99, 13]


def test_embeddings_are_read_back_by_row_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from geotriplet_assets.catalogue import legacy_dataset

    monkeypatch.setattr(legacy_dataset, "_READ_BLOCK_ROWS", 2)
    frame, embeddings = images_frame(), backbone(9)
    path = tmp_path / "dataset.h5"
    write_with_module(path, frame, embeddings)
    rows = np.array([0, 3, 4, 5, 8])

    np.testing.assert_array_equal(read_legacy_embeddings(path, rows), embeddings[rows])
    with pytest.raises(ValueError, match="ascending"):
        read_legacy_embeddings(path, np.array([3, 1]))
    with pytest.raises(LegacyDatasetError, match="rows up to 9"):
        read_legacy_embeddings(path, np.array([1, 9]))


def test_ids_fall_back_to_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    write_with_module(path, images_frame(), backbone(9), valid_indices=[0, 1, 3])
    with h5py.File(path, "a") as f:
        del f["metadata/Subpath"]

    assert read_legacy_dataset(path).image_ids.tolist() == ["row-0", "row-1", "row-3"]


def test_missing_datasets_are_named(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    write_with_module(path, images_frame(), backbone(9))
    with h5py.File(path, "a") as f:
        del f["metadata/TargetID"]
        del f["images/valid_indices"]

    with pytest.raises(LegacyDatasetError, match=r"dataset\.h5 lacks .*") as error:
        read_legacy_dataset(path)
    assert "metadata/TargetID" in str(error.value)
    assert "images/valid_indices" in str(error.value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: f["metadata"].__delitem__("DatasetID"), "metadata/DatasetID"),
        (lambda f: _replace(f, "metadata/DatasetID", np.arange(4)), r"shape \(4,\)"),
        (lambda f: _replace(f, "images/valid_indices", np.array([0, 9])), "row 9"),
        (lambda f: _replace(f, "metadata/PatchID", np.ones(9)), "metadata/PatchID"),
        (lambda f: f.attrs.__setitem__("backbone_output_size", 512), "backbone_output_size"),
        (lambda f: _replace(f, "backbone_embeddings", np.ones(9)), "2-d float"),
    ],
)
def test_odd_datasets_are_named(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / "dataset.h5"
    write_with_module(path, images_frame(), backbone(9))
    with h5py.File(path, "a") as f:
        damage(f)

    with pytest.raises(LegacyDatasetError, match=message):
        read_legacy_dataset(path)


def _replace(f: h5py.File, name: str, values: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=values)


def test_not_hdf5_is_named(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    path.write_text("not hdf5")
    with pytest.raises(LegacyDatasetError, match=r"dataset\.h5 is not a readable HDF5"):
        read_legacy_dataset(path)
    with pytest.raises(LegacyDatasetError, match="does not exist"):
        read_legacy_dataset(tmp_path / "absent.h5")
