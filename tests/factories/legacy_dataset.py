"""Write a `dataset.h5` in the original project's schema, its wrong KNN included, for the
compatibility tests of `geotriplet_assets.catalogue.legacy_dataset`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import ArrayLike
from scipy.spatial.distance import cdist

from geotriplet_assets.catalogue.legacy_dataset import EMBEDDINGS, VALID_INDICES
from geotriplet_assets.paths import atomic_path

ORIGINAL_KNN_K = 50


def write_legacy_dataset(
    path: Path,
    *,
    embeddings: np.ndarray,
    dataset_id: ArrayLike,
    target_id: ArrayLike,
    lat: ArrayLike,
    lon: ArrayLike,
    splits: Mapping[str, ArrayLike],
    valid_indices: ArrayLike | None = None,
    patch_id: ArrayLike | None = None,
    street_view_id: ArrayLike | None = None,
    image_filename: Sequence[str] | None = None,
    subpath: Sequence[str] | None = None,
    knn_k: int = ORIGINAL_KNN_K,
) -> None:
    """Write a file in the original schema, its wrong KNN included, for compatibility tests.

    Small files only: the KNN is quadratic, as it was. splits maps train/val/test to
    TargetIDs. Defaults: every row valid, zero Patch and StreetView IDs, files
    "<row:06d>.jpg" in "<DatasetID:04d>/<DatasetID:04d>".
    """
    vectors = np.asarray(embeddings, dtype=np.float32)
    n_rows = len(vectors)
    datasets = np.asarray(dataset_id, dtype=np.int64)
    metadata: dict[str, np.ndarray] = {
        "DatasetID": datasets,
        "TargetID": np.asarray(target_id, dtype=np.int64),
        "PatchID": _or_zeros(patch_id, n_rows),
        "StreetViewID": _or_zeros(street_view_id, n_rows),
        "Image filename": _strings(image_filename, [f"{row:06d}.jpg" for row in range(n_rows)]),
        "Subpath": _strings(subpath, [f"{d:04d}/{d:04d}" for d in datasets]),
        "Target Point Latitude": np.asarray(lat, dtype=np.float64),
        "Target Point Longitude": np.asarray(lon, dtype=np.float64),
    }
    for name, column in metadata.items():
        if column.shape != (n_rows,):
            raise ValueError(f"metadata column {name!r} has shape {column.shape}, not ({n_rows},)")
    valid = np.arange(n_rows) if valid_indices is None else valid_indices
    with atomic_path(Path(path)) as temporary, h5py.File(temporary, "w") as handle:
        handle.create_group("images")
        handle.create_group("metadata")
        handle.create_group("splits")
        for name, targets in splits.items():
            handle["splits"].create_dataset(
                name, data=np.asarray(targets, dtype=np.int64), compression="lzf"
            )
        for name, column in metadata.items():
            dtype = h5py.string_dtype(encoding="utf-8") if column.dtype == object else None
            handle["metadata"].create_dataset(name, data=column, dtype=dtype, compression="lzf")
        handle.attrs["backbone_output_size"] = vectors.shape[1]
        handle.create_dataset(EMBEDDINGS, data=vectors, compression="lzf")
        for name, targets in splits.items():
            _write_original_knn(handle, name, np.asarray(targets, dtype=np.int64), metadata, knn_k)
        handle.create_dataset(
            VALID_INDICES, data=np.asarray(valid, dtype=np.int64), compression="lzf"
        )


def _strings(values: Sequence[str] | None, default: list[str]) -> np.ndarray:
    return np.asarray(default if values is None else list(values), dtype=object)


def _or_zeros(values: ArrayLike | None, n_rows: int) -> np.ndarray:
    return np.zeros(n_rows, dtype=np.int64) if values is None else np.asarray(values, np.int64)


def _write_original_knn(
    handle: h5py.File,
    split_name: str,
    split_targets: np.ndarray,
    metadata: Mapping[str, np.ndarray],
    knn_k: int,
) -> None:
    """The original's per-split KNN: first (lat, lon) per TargetID, log1p Euclidean degrees."""
    order = np.sort(split_targets)
    first_row = {}
    for row, target in enumerate(metadata["TargetID"]):
        first_row.setdefault(int(target), row)
    missing = [int(target) for target in order if int(target) not in first_row]
    if missing:
        raise ValueError(f"splits[{split_name!r}] names TargetIDs without images: {missing[:5]}")
    rows = [first_row[int(target)] for target in order]
    points = np.column_stack(
        (metadata["Target Point Latitude"][rows], metadata["Target Point Longitude"][rows])
    )
    distances = np.log1p(cdist(points, points).astype(np.float32))
    np.fill_diagonal(distances, np.inf)
    k = min(knn_k, max(len(order) - 1, 0))
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    layout: dict[str, Any] = {}
    if k > 0:  # HDF5 cannot chunk an empty dimension; the original crashed there instead
        layout = {"chunks": (min(1024, len(order)), k), "compression": "gzip"}
        layout["compression_opts"] = 4
    group = handle["metadata"]
    group.create_dataset(f"target_id_order_{split_name}", data=order, compression="lzf")
    group.create_dataset(f"knn_indices_geo_{split_name}", data=nearest.astype(np.int32), **layout)
    group.create_dataset(
        f"knn_distances_geo_{split_name}",
        data=np.take_along_axis(distances, nearest, axis=1).astype(np.float16),
        **layout,
    )
