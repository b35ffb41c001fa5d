"""Targets: one row per (dataset_id, target_id) with a robust centre of its images."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geotriplet_assets.geodesy import chord_to_metres, latlon_from_unit_vectors, unit_vectors

KEY_COLUMNS = ("dataset_id", "target_id")
IMAGE_COLUMNS = (*KEY_COLUMNS, "lat", "lon")
TARGET_COLUMNS = (
    "target_index",
    *KEY_COLUMNS,
    "lat",
    "lon",
    "n_images",
    "x",
    "y",
    "z",
    "spread_m",
)


class TargetsInputError(ValueError):
    """An images or targets table that cannot be turned into targets."""


def _key_arrays(frame: pd.DataFrame, what: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing:
        raise TargetsInputError(f"{what} table lacks column(s) {missing}")
    arrays = []
    for column in KEY_COLUMNS:
        series = frame[column]
        if not pd.api.types.is_integer_dtype(series.dtype) or series.hasnans:
            raise TargetsInputError(
                f"{what} column {column!r} must hold integers without gaps, got {series.dtype}"
            )
        arrays.append(series.to_numpy(dtype=np.int64))
    return arrays[0], arrays[1]


def _image_vectors(images: pd.DataFrame) -> np.ndarray:
    missing = [c for c in ("lat", "lon") if c not in images.columns]
    if missing:
        raise TargetsInputError(f"images table lacks column(s) {missing}")
    return unit_vectors(
        images["lat"].to_numpy(dtype=np.float64), images["lon"].to_numpy(dtype=np.float64)
    )


def _empty_targets() -> pd.DataFrame:
    dtypes = {c: np.float64 for c in TARGET_COLUMNS}
    dtypes.update({c: np.int64 for c in ("target_index", *KEY_COLUMNS, "n_images")})
    return pd.DataFrame({c: np.empty(0, dtype=dtypes[c]) for c in TARGET_COLUMNS})


def build_targets(images: pd.DataFrame) -> pd.DataFrame:
    """One row per target, sorted by (dataset_id, target_id), with its robust centre.

    The centre is the component-wise median of the images' unit ECEF vectors,
    renormalised: with three or more images one wild coordinate cannot pull it
    outside the range of the others, and working on vectors needs no special
    case at the antimeridian or near the poles. (With two images it is their
    midpoint.) If the median vector vanishes (images on opposite sides of the
    Earth) the target's first image is used. spread_m is the largest
    great-circle distance from the centre to one of the target's images.
    """
    dataset_id, target_id = _key_arrays(images, "images")
    vectors = _image_vectors(images)
    if len(images) == 0:
        return _empty_targets()

    keys = pd.DataFrame({"dataset_id": dataset_id, "target_id": target_id})
    codes = keys.groupby(list(KEY_COLUMNS), sort=True).ngroup().to_numpy(dtype=np.int64)
    frame = pd.DataFrame(vectors, columns=["x", "y", "z"])
    frame["code"] = codes
    groups = frame.groupby("code", sort=True)
    centres = groups[["x", "y", "z"]].median().to_numpy(copy=True)
    norms = np.linalg.norm(centres, axis=1)
    degenerate = norms < 1e-12
    if degenerate.any():
        centres[degenerate] = groups[["x", "y", "z"]].first().to_numpy()[degenerate]
        norms[degenerate] = 1.0
    centres = centres / norms[:, None]

    metres = chord_to_metres(np.linalg.norm(vectors - centres[codes], axis=1))
    spread = pd.Series(metres).groupby(codes, sort=True).max().to_numpy()
    first_row = np.unique(codes, return_index=True)[1]
    lat, lon = latlon_from_unit_vectors(centres)
    return pd.DataFrame(
        {
            "target_index": np.arange(len(centres), dtype=np.int64),
            "dataset_id": dataset_id[first_row],
            "target_id": target_id[first_row],
            "lat": lat,
            "lon": lon,
            "n_images": np.bincount(codes).astype(np.int64),
            "x": centres[:, 0],
            "y": centres[:, 1],
            "z": centres[:, 2],
            "spread_m": spread.astype(np.float64),
        }
    )


def target_index_of_images(images: pd.DataFrame, targets: pd.DataFrame) -> np.ndarray:
    """The target_index (int64) of every image row, looked up by (dataset_id, target_id)."""
    image_keys = pd.MultiIndex.from_arrays(_key_arrays(images, "images"))
    target_keys = pd.MultiIndex.from_arrays(_key_arrays(targets, "targets"))
    if "target_index" not in targets.columns:
        raise TargetsInputError("targets table lacks column 'target_index'")
    if not target_keys.is_unique:
        duplicate = tuple(int(k) for k in target_keys[target_keys.duplicated()][0])
        raise TargetsInputError(f"targets table repeats (dataset_id, target_id) {duplicate}")
    positions = target_keys.get_indexer(image_keys)
    unknown = positions < 0
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        key = tuple(int(k) for k in image_keys[row])
        raise TargetsInputError(
            f"image row {row} has (dataset_id, target_id) {key} with no target"
        )
    return targets["target_index"].to_numpy(dtype=np.int64)[positions]
