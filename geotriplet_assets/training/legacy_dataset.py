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

The reader ignores `target_id_order_*` and `knn_*`: their metric is wrong (degrees,
not metres) and they merge targets that share a TargetID across DatasetIDs. Exact
great-circle neighbours are rebuilt from the per-image lat/lon it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from geotriplet_assets.geography.splits import SPLIT_NAMES

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
    *(f"splits/{name}" for name in SPLIT_NAMES),
)

NOT_VALID = "not_in_valid_indices"
ZERO_EMBEDDING = "zero_embedding"
NON_FINITE_EMBEDDING = "non_finite_embedding"
BAD_COORDINATES = "bad_coordinates"
NO_SPLIT = "target_in_no_split"
DROP_REASONS = (NOT_VALID, BAD_COORDINATES, NO_SPLIT, ZERO_EMBEDDING, NON_FINITE_EMBEDDING)
"""Why a row is dropped, in the order checked: each row counts under its first reason."""

_READ_BLOCK_ROWS = 1 << 16


class LegacyDatasetError(ValueError):
    """A legacy dataset.h5 that is missing a dataset or holds one of the wrong shape or type."""


@dataclass(frozen=True)
class LegacyDataset:
    """The usable images of a legacy file, one entry per image in file row order."""

    embeddings: np.ndarray  # (N, D) as stored: float32 or float16
    image_ids: np.ndarray  # str: "<Subpath>/<file stem>" or "row-<i>"
    dataset_id: np.ndarray  # int64
    target_id: np.ndarray  # int64, unique only within a dataset_id
    lat: np.ndarray  # float64 degrees of the target point
    lon: np.ndarray  # float64
    split: np.ndarray  # str: train / val / test
    source_row: np.ndarray  # int64 row in the legacy file
    dropped_rows: int = 0
    dropped_reason: dict[str, int] = field(default_factory=dict)

    def target_codes(self) -> np.ndarray:
        """Dense int64 target labels 0..T-1 of the (dataset_id, target_id) pairs."""
        pairs = np.column_stack((self.dataset_id, self.target_id))
        return np.unique(pairs, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def read_legacy_dataset(path: Path) -> LegacyDataset:
    """Read the usable rows of an original-schema dataset.h5; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise LegacyDatasetError(f"{path} does not exist or is not a file")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise LegacyDatasetError(f"{path} is not a readable HDF5 file: {error}") from error
    with handle:
        _require(handle, path, REQUIRED_DATASETS)
        embeddings = handle[EMBEDDINGS]
        if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
            raise LegacyDatasetError(
                f"{path}: {EMBEDDINGS} must be a 2-d float array, "
                f"got shape {embeddings.shape} dtype {embeddings.dtype}"
            )
        n_rows = embeddings.shape[0]
        _check_output_size(handle, path, embeddings.shape[1])
        columns = _read_columns(handle, path, n_rows)
        valid = _valid_rows(handle, path, n_rows)
        split = _split_of_rows(handle, path, columns[TARGET_ID])
        keep, dropped = _metadata_keep(valid, columns, split)
        kept_embeddings, dropped_embeddings = _read_kept_embeddings(embeddings, keep)
        image_ids = _image_ids(handle, path, n_rows)

    rows = np.flatnonzero(keep)
    return LegacyDataset(
        embeddings=kept_embeddings,
        image_ids=image_ids[rows],
        dataset_id=columns[DATASET_ID][rows],
        target_id=columns[TARGET_ID][rows],
        lat=columns[LATITUDE][rows],
        lon=columns[LONGITUDE][rows],
        split=np.asarray(SPLIT_NAMES)[split[rows]],
        source_row=rows.astype(np.int64),
        dropped_rows=int(n_rows - rows.size),
        dropped_reason=dropped | dropped_embeddings,
    )


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


def _split_of_rows(handle: h5py.File, path: Path, target_id: np.ndarray) -> np.ndarray:
    """Index into SPLIT_NAMES per row; -1 where the row's TargetID is in no split."""
    members = []
    for name in SPLIT_NAMES:
        dataset = handle[f"splits/{name}"]
        if dataset.ndim != 1 or dataset.dtype.kind not in "iu":
            raise LegacyDatasetError(
                f"{path}: splits/{name} must be 1-d integer TargetIDs, "
                f"got shape {dataset.shape} dtype {dataset.dtype}"
            )
        members.append(np.unique(dataset[()].astype(np.int64)))
    values, counts = np.unique(np.concatenate(members), return_counts=True)
    if (counts > 1).any():
        shared = int(values[counts > 1][0])
        where = [
            f"splits/{name}" for name, m in zip(SPLIT_NAMES, members, strict=True) if shared in m
        ]
        raise LegacyDatasetError(f"{path}: TargetID {shared} is in {' and '.join(where)}")
    split = np.full(target_id.shape, -1, dtype=np.int64)
    for number, targets in enumerate(members):
        split[np.isin(target_id, targets)] = number
    return split


def _metadata_keep(
    valid: np.ndarray, columns: Mapping[str, np.ndarray], split: np.ndarray
) -> tuple[np.ndarray, dict[str, int]]:
    """Rows that pass the metadata checks, and how many rows each check dropped."""
    lat, lon = columns[LATITUDE], columns[LONGITUDE]
    good_coordinates = (
        np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)
    )
    keep = np.ones(valid.shape, dtype=bool)
    dropped: dict[str, int] = {}
    for reason, failed in (
        (NOT_VALID, ~valid),
        (BAD_COORDINATES, ~good_coordinates),
        (NO_SPLIT, split < 0),
    ):
        dropped[reason] = int(np.count_nonzero(keep & failed))
        keep &= ~failed
    return keep, dropped


def _read_kept_embeddings(
    embeddings: h5py.Dataset, keep: np.ndarray
) -> tuple[np.ndarray, dict[str, int]]:
    """Kept rows, read in contiguous blocks; all-zero or non-finite rows are cleared from keep."""
    kept = np.empty((int(keep.sum()), embeddings.shape[1]), dtype=embeddings.dtype)
    dropped = {ZERO_EMBEDDING: 0, NON_FINITE_EMBEDDING: 0}
    filled = 0
    for start in range(0, keep.size, _READ_BLOCK_ROWS):
        mask = keep[start : start + _READ_BLOCK_ROWS]  # a view: clearing it clears keep
        if not mask.any():
            continue
        block = embeddings[start : start + mask.size][mask]
        zero = ~block.any(axis=1)
        non_finite = ~zero & ~np.isfinite(block).all(axis=1)
        dropped[ZERO_EMBEDDING] += int(zero.sum())
        dropped[NON_FINITE_EMBEDDING] += int(non_finite.sum())
        good = ~(zero | non_finite)
        mask[np.flatnonzero(mask)[~good]] = False
        kept[filled : filled + int(good.sum())] = block[good]
        filled += int(good.sum())
    return (kept if filled == len(kept) else kept[:filled].copy()), dropped


def _image_ids(handle: h5py.File, path: Path, n_rows: int) -> np.ndarray:
    """'<Subpath>/<stem>' (the id the catalogue gives the same file) or 'row-<i>'."""
    names = [IMAGE_FILENAME, SUBPATH]
    if not all(isinstance(handle.get(name), h5py.Dataset) for name in names):
        return np.asarray([f"row-{row}" for row in range(n_rows)], dtype=str)
    filenames, subpaths = (_column(handle, path, name, n_rows, "OSU") for name in names)
    return np.asarray(
        [
            _image_id(_text(folder), _text(name))
            for folder, name in zip(subpaths, filenames, strict=True)
        ],
        dtype=str,
    )


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _image_id(subpath: str, filename: str) -> str:
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    return stem if subpath in ("", ".") else f"{subpath.rstrip('/')}/{stem}"
