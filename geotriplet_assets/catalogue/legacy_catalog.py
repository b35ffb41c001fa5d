"""The image catalogue of an original-project `dataset.h5`: its metadata columns in the
catalogue's schema, each dropped row a rejection, and each image's row in the file.

The photos are optional. An image's `path` is its file under the image folder when that
file exists (for thumbnails and re-ranking), else "". `file_size` and `mtime_ns` are the
dataset.h5's own, since the embedding comes from that file: replacing the file re-embeds.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from geotriplet_assets.catalogue.image_catalog import (
    IMAGE_DTYPES,
    REJECTION_DTYPES,
    Catalog,
    EmptyCatalogError,
)
from geotriplet_assets.catalogue.legacy_dataset import LegacyDataset

LEGACY_FORM = "dataset.h5"
SOURCE_ROW = "source_row"
_DROP_DETAILS = {
    "not_in_valid_indices": "not in images/valid_indices: the original could not read the image",
    "bad_coordinates": "target latitude/longitude missing or out of range",
    "zero_embedding": "all-zero embedding: the original's fill value for a failed image",
    "non_finite_embedding": "embedding holds NaN or infinity",
    "duplicate_image_id": "the same Subpath and file name as an earlier row, which is kept",
}


def legacy_catalog(legacy: LegacyDataset, image_dir: Path | None) -> tuple[Catalog, pd.DataFrame]:
    """The catalogue of LEGACY's usable rows and, per image id, its row in the file."""
    if not len(legacy.image_ids):
        raise EmptyCatalogError(
            f"{legacy.path}: no usable row ({legacy.dropped_rows} dropped: "
            + ", ".join(f"{k}={v}" for k, v in legacy.dropped_reason.items() if v)
            + ")"
        )
    stat = legacy.path.stat()
    n = len(legacy.image_ids)
    columns: dict[str, object] = {
        "image_id": legacy.image_ids,
        "path": _present_files(legacy.files, image_dir),
        "metadata_path": np.char.add(f"{legacy.path.name}#", legacy.source_row.astype(str)),
        "dataset_id": legacy.dataset_id,
        "target_id": legacy.target_id,
        "patch_id": legacy.patch_id,
        "lat": legacy.lat,
        "lon": legacy.lon,
        "form": np.full(n, LEGACY_FORM),
        "street_view_id": pd.array(
            np.where(legacy.street_view_id < 0, None, legacy.street_view_id), dtype="Int64"
        ),
        "file_size": np.full(n, stat.st_size, dtype=np.int64),
        "mtime_ns": np.full(n, stat.st_mtime_ns, dtype=np.int64),
    }
    images = pd.DataFrame(
        {
            name: pd.array(columns.get(name, np.full(n, np.nan)), dtype=dtype)
            for name, dtype in IMAGE_DTYPES.items()
        }
    )
    order = np.argsort(legacy.image_ids, kind="stable")
    images = images.iloc[order].reset_index(drop=True)
    rows = pd.DataFrame({"image_id": images["image_id"], SOURCE_ROW: legacy.source_row[order]})
    return Catalog(images=images, rejections=_rejections(legacy)), rows


def _present_files(files: np.ndarray, image_dir: Path | None) -> np.ndarray:
    """Each file relative to IMAGE_DIR where it is a regular file there, else ""."""
    present = np.full(len(files), "", dtype=object)
    if image_dir is None or not image_dir.is_dir():
        return present
    for position, name in enumerate(files):
        relative = PurePosixPath(str(name))
        if not name or relative.is_absolute() or ".." in relative.parts:
            continue
        if (image_dir / relative).is_file():
            present[position] = str(relative)
    return present


def _rejections(legacy: LegacyDataset) -> pd.DataFrame:
    frames = [
        pd.DataFrame(
            {
                "file": legacy.path.name,
                "line": rows,
                "reason": reason,
                "detail": f"row dropped: {_DROP_DETAILS.get(reason, reason)}",
            }
        )
        for reason, rows in legacy.dropped.items()
        if len(rows)
    ]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in REJECTION_DTYPES.items()})
    frame = pd.concat(frames, ignore_index=True).astype(REJECTION_DTYPES)
    return frame.sort_values(["file", "line"], kind="stable", ignore_index=True)
