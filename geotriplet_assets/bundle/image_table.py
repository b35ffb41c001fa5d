"""The indexed images' metadata (images.parquet): its schema, writing it, and lookups by row
and by image id."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from geotriplet_assets.bundle.errors import BundleLoadError, UnknownImageError
from geotriplet_assets.geodesy import CoordinateError, validate_latlon

IMAGE_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("dataset_id", pa.int64()),
        ("target_id", pa.int64()),
        ("patch_id", pa.int64()),
        ("lat", pa.float64()),
        ("lon", pa.float64()),
        ("split", pa.string()),
    ]
)
IMAGE_COLUMNS = tuple(IMAGE_SCHEMA.names)
# Optional: the image file, relative to the manifest's `images_root` (for thumbnails).
PATH_COLUMN = "path"
_INTEGER_COLUMNS = tuple(f.name for f in IMAGE_SCHEMA if pa.types.is_integer(f.type))
_FLOAT_COLUMNS = tuple(f.name for f in IMAGE_SCHEMA if pa.types.is_floating(f.type))
_STRING_COLUMNS = tuple(f.name for f in IMAGE_SCHEMA if pa.types.is_string(f.type))


def write_image_table(path: Path, columns: Mapping[str, Any]) -> None:
    """Write images.parquet from COLUMNS (a name -> sequence mapping, e.g. a DataFrame): the
    columns of IMAGE_SCHEMA, in its order and types; row i is the bundle's row i."""
    missing = [name for name in IMAGE_COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"the image table lacks columns {', '.join(missing)}")
    schema = IMAGE_SCHEMA
    if PATH_COLUMN in columns:
        schema = schema.append(pa.field(PATH_COLUMN, pa.string()))
    arrays = [_column_array(columns[f.name], f) for f in schema]
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)


def _column_array(values: Any, field: pa.Field) -> pa.Array:
    values = np.asarray(values)
    try:
        array = pa.array(values, type=field.type, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise ValueError(
            f"the image table's column {field.name!r} cannot be stored as {field.type}: {error}"
            " (a missing value in a column of strings reads as a float NaN)"
        ) from error
    if array.null_count:
        raise ValueError(
            f"the image table's column {field.name!r} has {array.null_count} missing values"
        )
    return array


class _SortedIds:
    """A sequence view of the sorted image ids, for `bisect` (Arrow strings, no Python copies)."""

    def __init__(self, ids: pa.StringArray) -> None:
        self._ids = ids

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, position: int) -> str:
        return self._ids[position].as_py()


class ImageTable:
    """One row per indexed image, in index order (row i is FAISS id i and vectors.npy row i).

    Image ids stay in Arrow memory; `row_of` binary-searches a sorted copy, so a table of
    millions of images costs its string bytes plus 8 bytes a row, not a Python dict.
    """

    def __init__(self, table: pa.Table, *, source: str = "images.parquet") -> None:
        _check_schema(table.schema, source)
        if table.num_rows == 0:
            raise BundleLoadError(f"{source}: no rows")
        self.count = table.num_rows
        self.image_ids: pa.StringArray = _string_column(table, "image_id", source)
        self.splits: pa.StringArray = _string_column(table, "split", source)
        self.paths: pa.StringArray | None = (
            _string_column(table, PATH_COLUMN, source)
            if table.schema.get_field_index(PATH_COLUMN) >= 0
            else None
        )
        self.dataset_id = _numpy_column(table, "dataset_id", np.int64, source)
        self.target_id = _numpy_column(table, "target_id", np.int64, source)
        self.patch_id = _numpy_column(table, "patch_id", np.int64, source)
        self.lat = _numpy_column(table, "lat", np.float64, source)
        self.lon = _numpy_column(table, "lon", np.float64, source)
        try:
            validate_latlon(self.lat, self.lon)
        except CoordinateError as error:
            raise BundleLoadError(f"{source}: {error}") from error
        # One integer per building (dataset_id, target_id), for grouping and exclusion.
        buildings = np.column_stack((self.dataset_id, self.target_id))
        self._buildings, codes = np.unique(buildings, axis=0, return_inverse=True)
        self.building_code = codes.reshape(-1).astype(np.int64)
        order = pc.sort_indices(self.image_ids)
        self._sorted_rows = order.to_numpy().astype(np.int64)
        sorted_ids = self.image_ids.take(order)
        self._sorted_ids = _SortedIds(sorted_ids)
        _check_unique(sorted_ids, source)

    @classmethod
    def read(cls, path: Path) -> ImageTable:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as error:
            raise BundleLoadError(f"{path}: cannot read parquet: {error}") from error
        return cls(table, source=str(path))

    def row_of(self, image_id: str) -> int:
        """The row of IMAGE_ID; raises UnknownImageError."""
        position = bisect.bisect_left(self._sorted_ids, image_id)
        if position < self.count and self._sorted_ids[position] == image_id:
            return int(self._sorted_rows[position])
        raise UnknownImageError(image_id)

    def path(self, row: int) -> str | None:
        """The image file of ROW relative to the bundle's images_root, when recorded."""
        return None if self.paths is None else self.paths[row].as_py()

    def image_id(self, row: int) -> str:
        return self.image_ids[row].as_py()

    def building(self, row: int) -> tuple[int, int]:
        """(dataset_id, target_id) of ROW."""
        return int(self.dataset_id[row]), int(self.target_id[row])

    def building_code_of(self, building: tuple[int, int]) -> int | None:
        """The building code of (dataset_id, target_id), None if no image has it."""
        dataset_id, target_id = building
        # self._buildings is sorted by dataset_id, then target_id (np.unique's row order).
        lo = np.searchsorted(self._buildings[:, 0], dataset_id, side="left")
        hi = np.searchsorted(self._buildings[:, 0], dataset_id, side="right")
        position = lo + np.searchsorted(self._buildings[lo:hi, 1], target_id, side="left")
        if position < hi and self._buildings[position, 1] == target_id:
            return int(position)
        return None

    def record(self, row: int) -> dict[str, Any]:
        """Every column of ROW as plain Python values."""
        if not 0 <= row < self.count:
            raise IndexError(f"row {row} out of range for {self.count} images")
        return {
            "image_id": self.image_id(row),
            "dataset_id": int(self.dataset_id[row]),
            "target_id": int(self.target_id[row]),
            "patch_id": int(self.patch_id[row]),
            "lat": float(self.lat[row]),
            "lon": float(self.lon[row]),
            "split": self.splits[row].as_py(),
        }


def _check_schema(schema: pa.Schema, source: str) -> None:
    for name in (*_STRING_COLUMNS, *_INTEGER_COLUMNS, *_FLOAT_COLUMNS):
        if schema.get_field_index(name) < 0:
            raise BundleLoadError(f"{source}: column {name!r} is missing")
    for name in _INTEGER_COLUMNS:
        if not pa.types.is_integer(schema.field(name).type):
            raise BundleLoadError(
                f"{source}: column {name!r} must be integer, is {schema.field(name).type}"
            )
    for name in _FLOAT_COLUMNS:
        if not pa.types.is_floating(schema.field(name).type):
            raise BundleLoadError(
                f"{source}: column {name!r} must be floating point, is {schema.field(name).type}"
            )
    for name in _STRING_COLUMNS:
        kind = schema.field(name).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise BundleLoadError(f"{source}: column {name!r} must be strings, is {kind}")


def _string_column(table: pa.Table, name: str, source: str) -> pa.StringArray:
    column = table.column(name).combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if column.null_count:
        raise BundleLoadError(f"{source}: column {name!r} has {column.null_count} missing values")
    return column.cast(pa.string())


def _numpy_column(table: pa.Table, name: str, dtype: type, source: str) -> np.ndarray:
    column = table.column(name)
    if column.null_count:
        raise BundleLoadError(f"{source}: column {name!r} has {column.null_count} missing values")
    return np.ascontiguousarray(column.to_numpy(), dtype=dtype)


def _check_unique(sorted_ids: pa.StringArray, source: str) -> None:
    if len(sorted_ids) < 2:
        return
    repeated = pc.equal(sorted_ids.slice(1), sorted_ids.slice(0, len(sorted_ids) - 1))
    if pc.any(repeated).as_py():
        first = pc.index(repeated, True).as_py()
        raise BundleLoadError(
            f"{source}: image_id {sorted_ids[first].as_py()!r} appears more than once"
        )
