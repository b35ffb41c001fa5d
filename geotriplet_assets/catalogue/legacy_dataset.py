"""Read a `dataset.h5` in the original project's schema.

The original preprocessing wrote one HDF5 file:

- `backbone_embeddings` (N, D) float32, lzf; a failed image left an all-zero row;
  root attribute `backbone_output_size` = D;
- `metadata/<column>` (N,), lzf: `DatasetID`, `TargetID`, `PatchID`, `StreetViewID`
  int64, `Image filename`, `Subpath` utf-8 strings, `Target Point Latitude`,
  `Target Point Longitude` float64; row i describes embedding row i;
- `splits/{train,val,test}` int64 TargetIDs (split by TargetID alone);
- `metadata/target_id_order_{split}` int64 sorted TargetIDs of the split;
- `metadata/knn_indices_geo_{split}` int32 (n, k) rows of target_id_order, and
  `metadata/knn_distances_geo_{split}` float16 log1p of the Euclidean distance in
  degrees, gzip level 4, chunks (min(1024, n), k);
- `images/valid_indices` int64 rows whose image decoded.

The reader ignores `splits/*`, `target_id_order_*` and `knn_*`: the splits are by TargetID
alone, so targets sharing a TargetID across DatasetIDs share a split and neighbouring
buildings straddle train and test; the KNN's metric is wrong (degrees, not metres). The
pipeline splits and builds exact great-circle neighbours from the per-image lat/lon, as for
its own data.

Only the metadata columns are held in memory. The embeddings (77 GB at 25 M x 768 float32)
are scanned once in blocks for failed rows and later read back in blocks, partition by
partition (`read_legacy_embeddings`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

EMBEDDINGS = "backbone_embeddings"
VALID_INDICES = "images/valid_indices"
DATASET_ID = "metadata/DatasetID"
TARGET_ID = "metadata/TargetID"
PATCH_ID = "metadata/PatchID"
STREET_VIEW_ID = "metadata/StreetViewID"
IMAGE_FILENAME = "metadata/Image filename"
SUBPATH = "metadata/Subpath"
LATITUDE = "metadata/Target Point Latitude"
LONGITUDE = "metadata/Target Point Longitude"
REQUIRED_DATASETS = (
    EMBEDDINGS,
    DATASET_ID,
    TARGET_ID,
    LATITUDE,
    LONGITUDE,
    VALID_INDICES,
)

NOT_VALID = "not_in_valid_indices"
ZERO_EMBEDDING = "zero_embedding"
NON_FINITE_EMBEDDING = "non_finite_embedding"
BAD_COORDINATES = "bad_coordinates"
DUPLICATE_IMAGE_ID = "duplicate_image_id"
DROP_REASONS = (
    NOT_VALID,
    BAD_COORDINATES,
    ZERO_EMBEDDING,
    NON_FINITE_EMBEDDING,
    DUPLICATE_IMAGE_ID,
)
"""Why a row is dropped, in the order checked: each row counts under its first reason."""

_READ_BLOCK_ROWS = 1 << 16


class LegacyDatasetError(ValueError):
    """A legacy dataset.h5 that is missing a dataset or holds one of the wrong shape or type."""


@dataclass(frozen=True)
class LegacyDataset:
    """The usable images of a legacy file, one entry per image in file row order; the
    embeddings stay in the file (`read_legacy_embeddings`)."""

    path: Path
    dim: int
    dtype: np.dtype
    image_ids: np.ndarray  # str: "<Subpath>/<file stem>" or "row-<i>"
    files: np.ndarray  # str: "<Subpath>/<Image filename>", "" where the file names none
    dataset_id: np.ndarray  # int64
    target_id: np.ndarray  # int64, unique only within a dataset_id
    patch_id: np.ndarray  # int64 (0 where the file has no PatchID)
    street_view_id: np.ndarray  # int64 (-1 where the file has no StreetViewID)
    lat: np.ndarray  # float64 degrees of the target point
    lon: np.ndarray  # float64
    source_row: np.ndarray  # int64 row in the legacy file
    dropped: dict[str, np.ndarray] = field(default_factory=dict)  # reason -> source rows

    @property
    def dropped_rows(self) -> int:
        return sum(len(rows) for rows in self.dropped.values())

    @property
    def dropped_reason(self) -> dict[str, int]:
        return {reason: len(rows) for reason, rows in self.dropped.items()}

    def target_codes(self) -> np.ndarray:
        """Dense int64 target labels 0..T-1 of the (dataset_id, target_id) pairs."""
        pairs = np.column_stack((self.dataset_id, self.target_id))
        return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def read_legacy_dataset(path: Path) -> LegacyDataset:
    """The usable rows of an original-schema dataset.h5; see the module docstring."""
    path = Path(path)
    with _open(path) as handle:
        _require(handle, path, REQUIRED_DATASETS)
        embeddings = handle[EMBEDDINGS]
        if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
            raise LegacyDatasetError(
                f"{path}: {EMBEDDINGS} must be a 2-d float array, "
                f"got shape {embeddings.shape} dtype {embeddings.dtype}"
            )
        n_rows, dim = embeddings.shape
        _check_output_size(handle, path, dim)
        columns = _read_columns(handle, path, n_rows)
        valid = _valid_rows(handle, path, n_rows)
        keep, dropped = _metadata_keep(valid, columns)
        dropped |= _scan_embeddings(embeddings, keep)
        image_ids, files = _image_ids(handle, path, n_rows)
        dropped[DUPLICATE_IMAGE_ID] = _drop_duplicate_ids(image_ids, keep)
        patch_id = _optional_ids(handle, path, PATCH_ID, n_rows, 0)
        street_view_id = _optional_ids(handle, path, STREET_VIEW_ID, n_rows, -1)
        dtype = embeddings.dtype

    rows = np.flatnonzero(keep)
    return LegacyDataset(
        path=path,
        dim=int(dim),
        dtype=dtype,
        image_ids=image_ids[rows],
        files=files[rows],
        dataset_id=columns[DATASET_ID][rows],
        target_id=columns[TARGET_ID][rows],
        patch_id=patch_id[rows],
        street_view_id=street_view_id[rows],
        lat=columns[LATITUDE][rows],
        lon=columns[LONGITUDE][rows],
        source_row=rows.astype(np.int64),
        dropped=dropped,
    )


def read_legacy_embeddings(path: Path, rows: np.ndarray) -> np.ndarray:
    """float32 embeddings of the file's ROWS (ascending source rows), read block by block so
    only the rows asked for are held."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and (np.diff(rows) <= 0).any():
        raise ValueError("read_legacy_embeddings needs strictly ascending rows")
    with _open(path) as handle:
        _require(handle, path, (EMBEDDINGS,))
        embeddings = handle[EMBEDDINGS]
        if rows.size and (rows[0] < 0 or rows[-1] >= embeddings.shape[0]):
            raise LegacyDatasetError(
                f"{path}: rows up to {int(rows[-1])} asked for, the file has "
                f"{embeddings.shape[0]}; materialise image_catalog again"
            )
        out = np.empty((rows.size, embeddings.shape[1]), dtype=np.float32)
        filled = 0
        while filled < rows.size:
            start = int(rows[filled])
            end = min(start + _READ_BLOCK_ROWS, embeddings.shape[0])
            count = int(np.searchsorted(rows, end) - filled)
            block = embeddings[start:end]
            out[filled : filled + count] = block[rows[filled : filled + count] - start]
            filled += count
    return out


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise LegacyDatasetError(f"{path} does not exist or is not a file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise LegacyDatasetError(f"{path} is not a readable HDF5 file: {error}") from error


def _require(handle: h5py.File, path: Path, names: Sequence[str]) -> None:
    missing = [name for name in names if not isinstance(handle.get(name), h5py.Dataset)]
    if missing:
        raise LegacyDatasetError(f"{path} lacks dataset(s) {', '.join(missing)}")


def _check_output_size(handle: h5py.File, path: Path, width: int) -> None:
    stated = handle.attrs.get("backbone_output_size")
    if stated is not None and int(stated) != width:
        raise LegacyDatasetError(
            f"{path}: attribute backbone_output_size is {int(stated)} "
            f"but {EMBEDDINGS} has {width} columns"
        )


def _column(handle: h5py.File, path: Path, name: str, n_rows: int, kind: str) -> np.ndarray:
    dataset = handle[name]
    if dataset.shape != (n_rows,):
        raise LegacyDatasetError(
            f"{path}: {name} has shape {dataset.shape}, expected ({n_rows},) like {EMBEDDINGS}"
        )
    if dataset.dtype.kind not in kind:
        raise LegacyDatasetError(f"{path}: {name} has dtype {dataset.dtype}, expected {kind}")
    return dataset[()]


def _read_columns(handle: h5py.File, path: Path, n_rows: int) -> dict[str, np.ndarray]:
    return {
        DATASET_ID: _column(handle, path, DATASET_ID, n_rows, "iu").astype(np.int64),
        TARGET_ID: _column(handle, path, TARGET_ID, n_rows, "iu").astype(np.int64),
        LATITUDE: _column(handle, path, LATITUDE, n_rows, "f").astype(np.float64),
        LONGITUDE: _column(handle, path, LONGITUDE, n_rows, "f").astype(np.float64),
    }


def _valid_rows(handle: h5py.File, path: Path, n_rows: int) -> np.ndarray:
    dataset = handle[VALID_INDICES]
    if dataset.ndim != 1 or dataset.dtype.kind not in "iu":
        raise LegacyDatasetError(
            f"{path}: {VALID_INDICES} must be 1-d integers, got shape {dataset.shape} "
            f"dtype {dataset.dtype}"
        )
    indices = dataset[()].astype(np.int64)
    outside = (indices < 0) | (indices >= n_rows)
    if outside.any():
        raise LegacyDatasetError(
            f"{path}: {VALID_INDICES} holds row {int(indices[outside][0])}, "
            f"outside 0..{n_rows - 1}"
        )
    valid = np.zeros(n_rows, dtype=bool)
    valid[indices] = True
    return valid


def _metadata_keep(
    valid: np.ndarray, columns: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows that pass the metadata checks, and the rows each check dropped."""
    lat, lon = columns[LATITUDE], columns[LONGITUDE]
    good_coordinates = (
        np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    )
    keep = np.ones(valid.shape, dtype=bool)
    dropped: dict[str, np.ndarray] = {}
    for reason, failed in ((NOT_VALID, ~valid), (BAD_COORDINATES, ~good_coordinates)):
        dropped[reason] = np.flatnonzero(keep & failed)
        keep &= ~failed
    return keep, dropped


def _scan_embeddings(embeddings: h5py.Dataset, keep: np.ndarray) -> dict[str, np.ndarray]:
    """Clear all-zero (a failed image) and non-finite rows from KEEP, reading in blocks."""
    zero_rows, non_finite_rows = [], []
    for start in range(0, keep.size, _READ_BLOCK_ROWS):
        mask = keep[start : start + _READ_BLOCK_ROWS]  # a view: clearing it clears keep
        if not mask.any():
            continue
        block = embeddings[start : start + mask.size]
        zero = mask & ~block.any(axis=1)
        non_finite = mask & ~zero & ~np.isfinite(block).all(axis=1)
        zero_rows.append(start + np.flatnonzero(zero))
        non_finite_rows.append(start + np.flatnonzero(non_finite))
        mask &= ~(zero | non_finite)
    empty = np.zeros(0, dtype=np.int64)
    return {
        ZERO_EMBEDDING: np.concatenate(zero_rows) if zero_rows else empty,
        NON_FINITE_EMBEDDING: np.concatenate(non_finite_rows) if non_finite_rows else empty,
    }


def _drop_duplicate_ids(image_ids: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Clear from KEEP every kept row whose image id an earlier kept row has; their rows."""
    rows = np.flatnonzero(keep)
    _, first = np.unique(image_ids[rows], return_index=True)
    later = np.setdiff1d(np.arange(rows.size), first)
    keep[rows[later]] = False
    return rows[later].astype(np.int64)


def _optional_ids(
    handle: h5py.File, path: Path, name: str, n_rows: int, missing: int
) -> np.ndarray:
    if not isinstance(handle.get(name), h5py.Dataset):
        return np.full(n_rows, missing, dtype=np.int64)
    return _column(handle, path, name, n_rows, "iu").astype(np.int64)


def _image_ids(handle: h5py.File, path: Path, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, '<Subpath>/<stem>' (the id the catalogue gives the same file) or 'row-<i>',
    and '<Subpath>/<Image filename>' (or '')."""
    names = [IMAGE_FILENAME, SUBPATH]
    if not all(isinstance(handle.get(name), h5py.Dataset) for name in names):
        ids = np.asarray([f"row-{row}" for row in range(n_rows)], dtype=str)
        return ids, np.full(n_rows, "", dtype=object)
    filenames, subpaths = (_column(handle, path, name, n_rows, "OSU") for name in names)
    ids, files = [], []
    for folder, name in zip(subpaths, filenames, strict=True):
        folder, name = _text(folder), _text(name)
        ids.append(_image_id(folder, name))
        files.append(name if folder in ("", ".") else f"{folder.rstrip('/')}/{name}")
    return np.asarray(ids, dtype=str), np.asarray(files, dtype=object)


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _image_id(subpath: str, filename: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return stem if subpath in ("", ".") else f"{subpath.rstrip('/')}/{stem}"
