"""The image table of a bundle: its schema, writing it, and the lookups the service makes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from geotriplet_assets.bundle.errors import BundleLoadError, UnknownImageError
from geotriplet_assets.bundle.image_table import IMAGE_SCHEMA, ImageTable, write_image_table


def _table(**overrides: pa.Array) -> pa.Table:
    columns = {
        "image_id": pa.array(["b/2", "a/1", "c/3", "a/0"]),
        "dataset_id": pa.array([1, 1, 2, 1], pa.int32()),
        "target_id": pa.array([7, 7, 7, 8], pa.int64()),
        "patch_id": pa.array([0, 1, 0, 0], pa.int64()),
        "lat": pa.array([50.0, 50.1, 50.2, 50.3]),
        "lon": pa.array([4.0, 4.1, 4.2, 4.3]),
        "split": pa.array(["train", "val", "test", "excluded"]).dictionary_encode(),
    }
    columns.update(overrides)
    return pa.table(columns)


def test_lookups_by_id_row_and_building() -> None:
    table = ImageTable(_table())
    assert [table.row_of(i) for i in ("a/0", "a/1", "b/2", "c/3")] == [3, 1, 0, 2]
    assert table.record(2) == {
        "image_id": "c/3",
        "dataset_id": 2,
        "target_id": 7,
        "patch_id": 0,
        "lat": 50.2,
        "lon": 4.2,
        "split": "test",
    }
    # Rows 0 and 1 are the same building; (2, 7) differs from (1, 7) by its dataset.
    codes = table.building_code
    assert codes[0] == codes[1] != codes[2] != codes[3]
    assert table.building_code_of((1, 7)) == codes[0]
    assert table.building_code_of((2, 7)) == codes[2]
    assert table.building_code_of((1, 9)) is None
    assert table.building_code_of((3, 7)) is None


@pytest.mark.parametrize("image_id", ["a", "a/", "z/9", "", "a/1 "])
def test_an_unknown_id_raises_a_key_error_naming_it(image_id: str) -> None:
    with pytest.raises(UnknownImageError, match="unknown image_id") as raised:
        ImageTable(_table()).row_of(image_id)
    assert isinstance(raised.value, KeyError)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_id": pa.array(["a", "b", "a", "c"])}, "'a' appears more than once"),
        ({"image_id": pa.array(["a", None, "b", "c"])}, "missing values"),
        ({"lat": pa.array([50.0, 91.0, 50.0, 50.0])}, "latitude"),
        ({"lon": pa.array([1, 2, 3, 4])}, "'lon' must be floating point"),
        ({"target_id": pa.array([1.0, 2.0, 3.0, 4.0])}, "'target_id' must be integer"),
    ],
)
def test_a_bad_table_is_refused(overrides: dict, message: str) -> None:
    with pytest.raises(BundleLoadError, match=message):
        ImageTable(_table(**overrides))


def test_a_missing_column_is_named() -> None:
    with pytest.raises(BundleLoadError, match="column 'split' is missing"):
        ImageTable(_table().drop_columns(["split"]))


def test_the_written_table_has_the_schema_the_reader_checks(tmp_path: Path) -> None:
    frame = _table().to_pandas()
    frame["split"] = pd.Categorical(frame["split"].astype(str))
    frame["extra"] = 1
    write_image_table(tmp_path / "images.parquet", frame)
    written = pq.read_table(tmp_path / "images.parquet")
    assert written.schema.equals(IMAGE_SCHEMA)
    table = ImageTable.read(tmp_path / "images.parquet")
    assert table.record(1)["split"] == "val" and table.row_of("a/0") == 3
    with pytest.raises(ValueError, match="lacks columns split"):
        write_image_table(tmp_path / "other.parquet", frame.drop(columns=["split"]))


@pytest.mark.parametrize(
    ("column", "values"),
    [("path", ["a.jpg", None, "c.jpg", "d.jpg"]), ("path", ["a.jpg", float("nan"), "c", "d"])],
)
def test_a_table_with_missing_values_is_not_written(
    tmp_path: Path, column: str, values: list
) -> None:
    frame = _table().to_pandas()
    frame[column] = values
    with pytest.raises(ValueError, match=f"column {column!r}"):
        write_image_table(tmp_path / "images.parquet", frame)
    assert not (tmp_path / "images.parquet").exists()
