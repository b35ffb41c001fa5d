"""Publish a search bundle: write it completely under a temporary name, rename, move `current`.

The format is `geotriplet_assets.bundle`'s, described in docs/bundle.md.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.errors import BundleLoadError
from geotriplet_assets.bundle.image_table import IMAGE_COLUMNS, write_image_table
from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.bundle.locate import DEFAULT_CLUSTER_RADIUS_M, DEFAULT_LOCATE_K
from geotriplet_assets.bundle.manifest import (
    check_bundle_files,
    describe_files,
    read_manifest,
    write_manifest,
)
from geotriplet_assets.bundle.preprocessing import DecodeLimits, Preprocessing, write_spec
from geotriplet_assets.config import IndexConfig
from geotriplet_assets.evaluation.localisation import held_out_rows, localise
from geotriplet_assets.serving.index_build import BuiltIndex, build_index

_TEMPORARY_PREFIX = ".bundle.tmp-"
_STALE_TEMPORARY_S = 6 * 3600

CALIBRATION_QUERIES = 10_000
"""Val images located to calibrate /locate's confidence (a seeded sample of larger splits)."""


class BundleInputError(ValueError):
    """The vectors, image table or model given for a bundle are inconsistent."""


@dataclass(frozen=True)
class PublishedBundle:
    path: Path
    version: str
    manifest: dict[str, Any]
    reused: bool = False


def publish_bundle(
    bundles_dir: Path,
    *,
    model_path: Path,
    preprocessing: Preprocessing,
    decode_limits: DecodeLimits,
    vectors: np.ndarray,
    images: pd.DataFrame,
    index_settings: IndexConfig,
    model_info: Mapping[str, Any],
    inputs: Mapping[str, str],
    keep: int = 3,
    locate_k: int = DEFAULT_LOCATE_K,
    locate_radius_m: float = DEFAULT_CLUSTER_RADIUS_M,
    images_root: Path | None = None,
) -> PublishedBundle:
    """Write a bundle of VECTORS (row i = IMAGES row i) and make it current.

    The bundle is loaded as the service loads it (every file hashed, the model run once)
    before it is renamed into place, so `current` never names a bundle that fails to load.
    When the current bundle already holds exactly this content it is kept, not duplicated.
    vectors.npy is stored as INDEX_SETTINGS.vectors_dtype (float16 by default: half the bytes,
    scores within about 1e-3 of float32); the index is built from the float32 VECTORS.
    IMAGES_ROOT, when given, is recorded as where the originals of IMAGES' `path` column lie
    (the service makes thumbnails from them). The confidence of `POST /locate` is calibrated
    on the bundle's val split (LOCATE_K hits, clusters of LOCATE_RADIUS_M) and recorded in
    the manifest.
    """
    vectors = _checked_inputs(vectors, images, model_path)
    with _staging_dir(bundles_dir) as staging:
        built = build_index(vectors, index_settings)
        stored = vectors.astype(index_settings.vectors_dtype, copy=False)
        _write_files(staging, model_path, preprocessing, decode_limits, stored, images, built)
        files = describe_files(staging)
        content = _content_sha256(files, built.manifest_entry())
        existing = _current_with_content(bundles_dir, content)
        if existing is not None:
            return existing
        created = datetime.now(UTC).replace(microsecond=0)
        version = fmt.bundle_version(created, content)
        document = {
            "version": version,
            "created_at": created.isoformat(),
            "content_sha256": content,
            "count": len(vectors),
            "embedding_dim": int(vectors.shape[1]),
            "vectors_dtype": index_settings.vectors_dtype,
            "index": built.manifest_entry(),
            "model": dict(model_info),
            "inputs": dict(inputs),
            "files": files,
            "software": _software_versions(),
            "locate": {"cluster_radius_m": locate_radius_m, "k": locate_k},
        }
        if images_root is not None:
            document["images_root"] = str(Path(images_root).resolve())
        write_manifest(staging, document)
        # Load it exactly as the service will before anything can point at it.
        staged = load_bundle(staging, verify_hashes=True)
        document["locate"]["calibration"] = _locate_calibration(staged)
        manifest = write_manifest(staging, document)
        final = bundles_dir / version
        if final.exists():
            raise FileExistsError(f"bundle {final} already exists")
        staging.rename(final)
    fmt.write_current_version(bundles_dir, version)
    prune_bundles(bundles_dir, keep)
    return PublishedBundle(final, version, dict(manifest.raw))


def _locate_calibration(bundle: LoadedBundle) -> dict[str, Any] | None:
    """The calibration of /locate's confidence on the val split (at most CALIBRATION_QUERIES
    of its images); None without val queries."""
    rows = held_out_rows(bundle, "val", CALIBRATION_QUERIES)
    return localise(bundle, rows).calibration().as_dict() if len(rows) else None


@contextmanager
def _staging_dir(bundles_dir: Path) -> Iterator[Path]:
    """A new temporary directory in BUNDLES_DIR, deleted on exit unless renamed away."""
    bundles_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(bundles_dir)
    staging = bundles_dir / f"{_TEMPORARY_PREFIX}{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        yield staging
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def prune_bundles(bundles_dir: Path, keep: int) -> list[str]:
    """Delete all but the KEEP newest bundles; never the current one. Returns what went."""
    current = fmt.read_current_version(bundles_dir)
    bundles = [p for p in bundles_dir.iterdir() if p.is_dir() and fmt.is_bundle_version(p.name)]
    newest_first = sorted(bundles, key=_publication_order, reverse=True)
    removed = [p.name for p in newest_first[max(keep, 1) :] if p.name != current]
    for name in removed:
        shutil.rmtree(bundles_dir / name, ignore_errors=True)
    return removed


def _publication_order(bundle: Path) -> tuple[str, int]:
    """Build time from the name, then the manifest's write time for bundles of one second."""
    manifest = bundle / fmt.MANIFEST
    written = manifest.stat().st_mtime_ns if manifest.exists() else 0
    return bundle.name.split("-")[0], written


def _write_files(
    directory: Path,
    model_path: Path,
    preprocessing: Preprocessing,
    decode_limits: DecodeLimits,
    vectors: np.ndarray,
    images: pd.DataFrame,
    built: BuiltIndex,
) -> None:
    shutil.copyfile(model_path, directory / fmt.MODEL)
    write_spec(directory / fmt.PREPROCESSING, preprocessing, decode_limits)
    faiss.write_index(built.index, str(directory / fmt.INDEX))
    np.save(directory / fmt.VECTORS, vectors)
    write_image_table(directory / fmt.IMAGES, images.reset_index(drop=True))


def _checked_inputs(vectors: np.ndarray, images: pd.DataFrame, model_path: Path) -> np.ndarray:
    if not model_path.is_file():
        raise BundleInputError(f"serving model {model_path} does not exist")
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise BundleInputError(f"need a non-empty (N, E) array of vectors, got {vectors.shape}")
    if len(images) != len(vectors):
        raise BundleInputError(f"{len(vectors)} vectors but {len(images)} image rows")
    missing = [c for c in IMAGE_COLUMNS if c not in images.columns]
    if missing:
        raise BundleInputError(f"the image table lacks columns {', '.join(missing)}")
    duplicated = images["image_id"].duplicated()
    if duplicated.any():
        raise BundleInputError(
            f"image ids must be unique; {images.loc[duplicated, 'image_id'].iloc[0]!r} repeats"
        )
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise BundleInputError("vectors contain NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1)
    worst = int(np.abs(norms - 1).argmax())
    if abs(norms[worst] - 1) > 1e-3:
        raise BundleInputError(
            f"vectors must be unit length (row {worst} has norm {norms[worst]:.4f})"
        )
    return vectors


def _content_sha256(files: Mapping[str, Mapping[str, Any]], index_entry: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}:{files[name]['sha256']}\n".encode())
    digest.update(json.dumps(index_entry["params"], sort_keys=True).encode())
    return digest.hexdigest()


def _current_with_content(bundles_dir: Path, content: str) -> PublishedBundle | None:
    try:
        version = fmt.read_current_version(bundles_dir)
        if version is None:
            return None
        manifest = read_manifest(bundles_dir / version)
        if manifest.raw.get("content_sha256") != content:
            return None
        check_bundle_files(bundles_dir / version, manifest, verify_hashes=False)
    except (fmt.BundleFormatError, BundleLoadError):
        return None
    return PublishedBundle(bundles_dir / version, version, dict(manifest.raw), reused=True)


def _remove_stale_temporaries(bundles_dir: Path) -> None:
    """Delete what a crashed publisher left; a younger one may belong to a running publisher."""
    cutoff = time.time() - _STALE_TEMPORARY_S
    for leftover in bundles_dir.glob(f"{_TEMPORARY_PREFIX}*"):
        if leftover.stat().st_mtime < cutoff:
            shutil.rmtree(leftover, ignore_errors=True)


def _software_versions() -> dict[str, str]:
    versions = {}
    for package in ("geotriplet", "faiss-cpu", "onnxruntime", "torch", "timm", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
