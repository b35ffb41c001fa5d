from pathlib import Path

import numpy as np
import pytest

from geotriplet_assets.catalogue.image_catalog import (
    IMAGE_DTYPES,
    REJECTION_DTYPES,
    EmptyCatalogError,
)
from geotriplet_assets.catalogue.legacy_catalog import LEGACY_FORM, SOURCE_ROW, legacy_catalog
from geotriplet_assets.catalogue.legacy_dataset import read_legacy_dataset
from tests.factories.legacy_dataset import write_legacy_dataset


def _write(path: Path, valid: list[int] | None = None) -> None:
    rng = np.random.default_rng(1)
    write_legacy_dataset(
        path,
        embeddings=rng.normal(size=(4, 5)).astype(np.float32) + 0.1,
        dataset_id=[2, 2, 1, 1],
        target_id=[5, 5, 9, 9],
        lat=[45.5, 45.5, 40.0, 40.0],
        lon=[-73.6, -73.6, -74.0, -74.0],
        splits={"train": [5, 9]},
        street_view_id=[30, 31, 32, 33],
        image_filename=["b.jpg", "a.jpg", "c.jpg", "d.jpg"],
        subpath=["0002", "0002", "0001", "../outside"],
        valid_indices=valid,
    )


def test_the_catalogue_of_a_file_names_each_row_and_only_photos_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    _write(path, valid=[0, 1, 3])
    photos = tmp_path / "photos"
    (photos / "0002").mkdir(parents=True)
    (photos / "0002" / "a.jpg").write_bytes(b"jpeg")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "d.jpg").write_bytes(b"jpeg")

    catalog, rows = legacy_catalog(read_legacy_dataset(path), photos)

    images = catalog.images
    assert list(images.columns) == list(IMAGE_DTYPES)
    assert images["image_id"].tolist() == ["../outside/d", "0002/a", "0002/b"]
    # Only files that are on disk and inside the image folder get a path.
    assert images["path"].tolist() == ["", "0002/a.jpg", ""]
    assert images["street_view_id"].tolist() == [33, 31, 30]
    assert set(images["form"]) == {LEGACY_FORM}
    assert set(images["file_size"]) == {path.stat().st_size}
    assert rows["image_id"].tolist() == images["image_id"].tolist()
    assert rows[SOURCE_ROW].tolist() == [3, 1, 0]
    assert list(catalog.rejections.columns) == list(REJECTION_DTYPES)
    assert catalog.rejections[["file", "line", "reason"]].values.tolist() == [
        ["dataset.h5", 2, "not_in_valid_indices"]
    ]


def test_without_an_image_folder_no_image_has_a_path(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    _write(path)
    catalog, _ = legacy_catalog(read_legacy_dataset(path), tmp_path / "absent")
    assert set(catalog.images["path"]) == {""}
    assert catalog.rejections.empty


def test_a_file_without_a_usable_row_is_an_empty_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "dataset.h5"
    _write(path, valid=[])
    with pytest.raises(EmptyCatalogError, match=r"no usable row.*not_in_valid_indices=4"):
        legacy_catalog(read_legacy_dataset(path), None)
