"""Each split's backbone embeddings as one float16 matrix on disk (.npy), memory-mapped; and
backbone embeddings projected row by row without holding them all.

Training gathers batch rows from it and evaluation reads it in chunks, so neither holds the
images x D matrix in anonymous memory: 25 million images of 1 280 dimensions are 64 GB. The
matrix is written shard by shard, block by block, to a temporary name and renamed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from geotriplet_assets.features.embedding_store import (
    iter_embedding_blocks,
    read_embedding_shard,
)
from geotriplet_assets.paths import ArtefactLayout, atomic_path

BLOCK_ROWS = 16384
"""Shard rows read at a time while a matrix is written (84 MB of float32 at D = 1280)."""


class EmbeddingMatrixError(ValueError):
    """The embedded images and the shards they point into disagree."""


def write_split_matrix(
    path: Path, layout: ArtefactLayout, model_name: str, images: pd.DataFrame
) -> np.memmap:
    """Write row i of PATH from IMAGES row i (its `dataset_id` shard, row `shard_row`, checked
    against `image_id`) and return the matrix memory-mapped read-only."""
    shards, dim = _checked_shards(layout, model_name, images)
    with atomic_path(path) as temporary:
        if len(images) == 0 or dim == 0:
            np.save(temporary, np.zeros((len(images), dim), dtype=np.float16))
        else:
            matrix = np.lib.format.open_memmap(
                temporary, mode="w+", dtype=np.float16, shape=(len(images), dim)
            )
            for shard_path, group in shards:
                _copy_rows(shard_path, group, matrix, images.index, transform=None)
            matrix.flush()
            del matrix
    return open_split_matrix(path)


def project_rows(
    layout: ArtefactLayout,
    model_name: str,
    images: pd.DataFrame,
    transform: Callable[[np.ndarray], np.ndarray],
    width: int,
) -> np.ndarray:
    """(len(IMAGES), WIDTH) float32: TRANSFORM of each row's backbone embedding, read shard by
    shard and block by block (e.g. the head's projection for the bundle), so only the
    projected rows are ever held, not images x D."""
    shards, _ = _checked_shards(layout, model_name, images)
    out = np.empty((len(images), width), dtype=np.float32)
    for shard_path, group in shards:
        _copy_rows(shard_path, group, out, images.index, transform=transform)
    return out


def _checked_shards(
    layout: ArtefactLayout, model_name: str, images: pd.DataFrame
) -> tuple[list[tuple[Path, pd.DataFrame]], int]:
    """Each shard IMAGES points into, with its rows (checked against the shard's ids), and
    the embeddings' common dimension."""
    dims: set[int] = set()
    shards = []
    for dataset_id, group in images.groupby("dataset_id", sort=True):
        shard_path = layout.embedding_shard(model_name, int(dataset_id))
        shard = read_embedding_shard(shard_path, load_embeddings=False)
        _check_rows(shard_path, shard.image_ids, group, layout)
        dims.add(int(shard.attrs["dim"]))
        shards.append((shard_path, group))
    if len(dims) > 1:
        raise EmbeddingMatrixError(f"the {model_name} shards differ in dimension: {sorted(dims)}")
    return shards, (dims.pop() if dims else 0)


def open_split_matrix(path: Path) -> np.memmap:
    """The matrix at PATH, memory-mapped read-only (an empty one is an ordinary array)."""
    return np.load(path, mmap_mode="r")


def _check_rows(
    path: Path, stored_ids: list[str], group: pd.DataFrame, layout: ArtefactLayout
) -> None:
    shard_rows = group["shard_row"].to_numpy(dtype=np.int64)
    if shard_rows.max(initial=-1) >= len(stored_ids):
        raise EmbeddingMatrixError(
            f"{layout.embedded_images_path} points past the end of {path}; "
            "materialise targets again"
        )
    stored = np.asarray(stored_ids, dtype=object)[shard_rows]
    stale = stored != group["image_id"].to_numpy(dtype=object)
    if stale.any():
        first = int(np.flatnonzero(stale)[0])
        raise EmbeddingMatrixError(
            f"{path} row {shard_rows[first]} holds image {stored[first]!r}, but "
            f"{layout.embedded_images_path} expects {group['image_id'].iloc[first]!r}; "
            "materialise targets again"
        )


def _copy_rows(
    shard_path: Path,
    group: pd.DataFrame,
    out: np.ndarray,
    index: pd.Index,
    transform: Callable[[np.ndarray], np.ndarray] | None,
) -> None:
    """out[position of each GROUP row in INDEX] = its shard row (through TRANSFORM), one shard
    block at a time."""
    shard_rows = group["shard_row"].to_numpy(dtype=np.int64)
    order = np.argsort(shard_rows, kind="stable")
    shard_rows = shard_rows[order]
    positions = index.get_indexer(group.index)[order]
    for start, block in iter_embedding_blocks(shard_path, BLOCK_ROWS):
        lo, hi = np.searchsorted(shard_rows, [start, start + len(block)])
        if hi > lo:
            rows = block[shard_rows[lo:hi] - start]
            out[positions[lo:hi]] = rows if transform is None else transform(rows)
