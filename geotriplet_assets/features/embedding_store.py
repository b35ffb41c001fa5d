"""One HDF5 file of backbone embeddings per shard (DatasetID), written atomically.

Layout: `embeddings` (N x D float32), `image_ids` (N utf-8 strings), group
`rejections` with `image_id`, `reason`, `detail`; identity and provenance as file attrs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from geotriplet_assets.bundle.preprocessing import Preprocessing
from geotriplet_assets.paths import atomic_path

SCHEMA_VERSION = 2
REQUIRED_ATTRS = ("model_name", "weights_sha256", "preprocessing", "engine")
COMPUTED_ATTRS = ("dtype", "dim", "count", "schema_version", "created_at", "content_sha256")
REJECTION_COLUMNS = ("image_id", "reason", "detail")
_CHUNK_ROWS = 1024
_BLOCK_ROWS = 16 * _CHUNK_ROWS
_STRING = h5py.string_dtype("utf-8")

AttrValue = str | int | float


class EmbeddingShardError(ValueError):
    """A shard file, or what is about to be written to one, is malformed."""


@dataclass
class EmbeddingShard:
    embeddings: np.ndarray | None
    image_ids: list[str]
    rejections: pd.DataFrame
    attrs: dict[str, AttrValue]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_json(str(self.attrs["preprocessing"]))


def write_embedding_shard(
    path: Path,
    *,
    embeddings: np.ndarray,
    image_ids: Sequence[str],
    rejections: pd.DataFrame,
    attrs: Mapping[str, AttrValue],
) -> None:
    """Write a shard to a temporary sibling and rename it onto PATH when complete.

    ATTRS must name model_name, weights_sha256, preprocessing (JSON) and engine; any
    other str/int/float values (dataset_id, fingerprint...) are stored as given.
    """
    embeddings = _validated_embeddings(embeddings, image_ids, path)
    missing = [key for key in REQUIRED_ATTRS if key not in attrs]
    reserved = [key for key in COMPUTED_ATTRS if key in attrs]
    if missing or reserved:
        raise EmbeddingShardError(
            f"attrs for {path}: missing {missing}, reserved (computed here) {reserved}"
        )
    absent = [c for c in REJECTION_COLUMNS if c not in rejections.columns]
    if absent:
        raise EmbeddingShardError(f"rejections for {path} lack columns {absent}")
    count, dim = embeddings.shape
    all_attrs: dict[str, Any] = {
        **attrs,
        "dtype": "float32",
        "dim": dim,
        "count": count,
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "content_sha256": content_sha256(embeddings, image_ids, rejections),
    }
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as shard:
        stored = shard.create_dataset(
            "embeddings",
            shape=(count, dim),
            dtype=np.float32,
            chunks=(min(count, _CHUNK_ROWS), dim) if count else None,
        )
        for start, block in _row_blocks(embeddings):  # EMBEDDINGS may be a memory map
            stored[start : start + len(block)] = block
        shard.create_dataset("image_ids", data=[str(i) for i in image_ids], dtype=_STRING)
        group = shard.create_group("rejections")
        for column in REJECTION_COLUMNS:
            group.create_dataset(
                column, data=rejections[column].astype(str).tolist(), dtype=_STRING
            )
        for key, value in all_attrs.items():
            shard.attrs[key] = _attr_value(key, value, path)


def read_shard_attrs(path: Path) -> dict[str, AttrValue]:
    """The file attrs of the shard at PATH, without reading any dataset."""
    with _open_shard(path) as shard:
        return _attrs(shard, path)


def content_sha256(
    embeddings: np.ndarray | Iterable[np.ndarray],
    image_ids: Sequence[str],
    rejections: pd.DataFrame,
) -> str:
    """SHA-256 of what a shard holds: its float32 rows (an array, or its blocks in order),
    image ids and rejections."""
    digest = hashlib.sha256()
    blocks = (
        (block for _, block in _row_blocks(embeddings))
        if isinstance(embeddings, np.ndarray)
        else embeddings
    )
    for block in blocks:
        digest.update(np.ascontiguousarray(block, dtype="<f4").tobytes())
    for values in (image_ids, *(rejections[column] for column in REJECTION_COLUMNS)):
        digest.update("\0".join(map(str, values)).encode("utf-8", "surrogateescape") + b"\1")
    return digest.hexdigest()


def read_verified_shard(path: Path, *, load_embeddings: bool = True) -> EmbeddingShard:
    """The shard at PATH (its embeddings only if LOAD_EMBEDDINGS), its content checked block
    by block against the checksum it was written with; raises EmbeddingShardError for a
    damaged or edited shard."""
    shard = read_embedding_shard(path, load_embeddings=load_embeddings)
    blocks = (block for _, block in iter_embedding_blocks(path))
    actual = content_sha256(blocks, shard.image_ids, shard.rejections)
    if actual != shard.attrs["content_sha256"]:
        raise EmbeddingShardError(
            f"{path}: its content no longer matches the checksum it was written with"
        )
    return shard


def read_embedding_shard(path: Path, *, load_embeddings: bool = True) -> EmbeddingShard:
    """Read and validate the shard at PATH (embeddings is None unless LOAD_EMBEDDINGS)."""
    with _open_shard(path) as shard:
        attrs = _attrs(shard, path)
        try:
            stored = shard["embeddings"]
            image_ids = _strings(shard["image_ids"])
            rejections = pd.DataFrame(
                {c: _strings(shard["rejections"][c]) for c in REJECTION_COLUMNS},
                columns=list(REJECTION_COLUMNS),
            )
        except KeyError as error:
            raise EmbeddingShardError(f"{path} lacks a dataset: {error}") from error
        expected = (int(attrs["count"]), int(attrs["dim"]))
        if stored.shape != expected or len(image_ids) != expected[0]:
            raise EmbeddingShardError(
                f"{path}: embeddings {stored.shape} and {len(image_ids)} image ids do not "
                f"match count x dim {expected}"
            )
        embeddings = stored[...].astype(np.float32, copy=False) if load_embeddings else None
    return EmbeddingShard(embeddings, image_ids, rejections, attrs)


def iter_embedding_blocks(
    path: Path, block_rows: int = 16 * _CHUNK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 rows) of the shard's embeddings, BLOCK_ROWS at a time: a shard of
    millions of images is read without holding all of it."""
    with _open_shard(path) as shard:
        _attrs(shard, path)
        try:
            stored = shard["embeddings"]
        except KeyError as error:
            raise EmbeddingShardError(f"{path} lacks a dataset: {error}") from error
        for start in range(0, stored.shape[0], block_rows):
            yield start, stored[start : start + block_rows].astype(np.float32, copy=False)


@dataclass(frozen=True)
class ShardStatistics:
    rows: int
    non_finite_rows: int
    zero_rows: int  # norm below 1e-6: a zero-filled failure
    min_norm: float
    mean_norm: float


def shard_statistics(path: Path) -> ShardStatistics:
    """Row counts and norms of the shard's embeddings, read block by block."""
    rows = non_finite = zero = 0
    norm_sum, min_norm = 0.0, float("inf")
    for _, block in iter_embedding_blocks(path):
        finite = np.isfinite(block).all(axis=1)
        norms = np.linalg.norm(np.nan_to_num(block), axis=1)
        rows += len(block)
        non_finite += int((~finite).sum())
        zero += int((norms < 1e-6).sum())
        norm_sum += float(norms.sum())
        min_norm = min(min_norm, float(norms.min())) if len(norms) else min_norm
    return ShardStatistics(
        rows, non_finite, zero, min_norm if rows else 0.0, norm_sum / rows if rows else 0.0
    )


def _validated_embeddings(
    embeddings: np.ndarray, image_ids: Sequence[str], path: Path
) -> np.ndarray:
    """EMBEDDINGS checked, block by block, and never copied (it may be a memory map)."""
    array = np.asarray(embeddings)
    if array.ndim != 2 or array.shape[1] < 1:
        raise EmbeddingShardError(f"embeddings for {path} must be N x D, got {array.shape}")
    if len(image_ids) != array.shape[0]:
        raise EmbeddingShardError(
            f"{array.shape[0]} embeddings but {len(image_ids)} image ids for {path}"
        )
    if not all(np.isfinite(block).all() for _, block in _row_blocks(array)):
        raise EmbeddingShardError(f"embeddings for {path} contain NaN or infinite values")
    return array


def _row_blocks(array: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of ARRAY, _BLOCK_ROWS at a time, as `iter_embedding_blocks` reads a
    shard: the temporaries of a check or a hash stay one block large."""
    for start in range(0, len(array), _BLOCK_ROWS):
        yield start, array[start : start + _BLOCK_ROWS]


def _attr_value(key: str, value: Any, path: Path) -> AttrValue:
    if not isinstance(value, str | int | float | np.number | np.bool_):
        raise TypeError(
            f"attr {key!r} for {path} must be str, int or float, got {type(value).__name__}"
        )
    return value


def _open_shard(path: Path) -> h5py.File:
    if not path.is_file():
        raise FileNotFoundError(f"embedding shard not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise EmbeddingShardError(f"{path} is not a readable HDF5 file: {error}") from error


def _attrs(shard: h5py.File, path: Path) -> dict[str, AttrValue]:
    attrs = {key: _python_value(value) for key, value in shard.attrs.items()}
    version = attrs.get("schema_version")
    if version is None:
        raise EmbeddingShardError(
            f"{path} is not a GeoTriplet embedding shard (no schema_version attribute)"
        )
    if version != SCHEMA_VERSION:
        raise EmbeddingShardError(
            f"{path} has schema version {version}; this code reads version {SCHEMA_VERSION}: "
            "materialise backbone_embeddings again"
        )
    missing = [key for key in (*REQUIRED_ATTRS, *COMPUTED_ATTRS) if key not in attrs]
    if missing:
        raise EmbeddingShardError(f"{path} lacks attrs {missing}")
    try:
        Preprocessing.from_json(str(attrs["preprocessing"]))
    except ValueError as error:
        raise EmbeddingShardError(f"{path}: bad preprocessing attr: {error}") from error
    return attrs


def _python_value(value: Any) -> AttrValue:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _strings(dataset: h5py.Dataset) -> list[str]:
    return [str(v) for v in dataset.asstr()[...]]
