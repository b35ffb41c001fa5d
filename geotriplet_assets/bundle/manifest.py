"""A bundle's manifest.json (docs/bundle.md): written by the pipeline, parsed and checked by
whoever loads the bundle."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.checksums import file_sha256
from geotriplet_assets.bundle.errors import BundleLoadError
from geotriplet_assets.bundle.locate import DEFAULT_CLUSTER_RADIUS_M, DEFAULT_LOCATE_K, Calibration

FORMAT_VERSION = 2
"""2: `vectors_dtype` names vectors.npy's dtype (float16 or float32); 1: always float32."""
SUPPORTED_FORMAT_VERSIONS = (1, FORMAT_VERSION)
VECTOR_DTYPES = ("float16", "float32")
INDEX_TYPES = ("flat", "hnsw", "ivfpq")
REQUIRED_FILES = fmt.BUNDLE_FILES
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class IndexInfo:
    type: str
    metric: str
    params: Mapping[str, Any]
    recall_at_10: float | None


@dataclass(frozen=True)
class LocateInfo:
    """How `POST /locate` estimates positions from this bundle's hits (docs/bundle.md)."""

    cluster_radius_m: float = DEFAULT_CLUSTER_RADIUS_M
    k: int = DEFAULT_LOCATE_K
    calibration: Calibration | None = None


@dataclass(frozen=True)
class Manifest:
    format_version: int
    version: str
    created_at: str
    count: int
    embedding_dim: int
    index: IndexInfo
    files: Mapping[str, FileEntry]
    raw: Mapping[str, Any]
    """The whole manifest as read, including model, inputs and software."""
    locate: LocateInfo = LocateInfo()
    images_root: Path | None = None
    """Where the originals of images.parquet's `path` column lie, if the bundle records it."""
    vectors_dtype: str = "float32"
    """vectors.npy's dtype: float16 halves the re-scoring vectors (format 2), float32 is exact."""


def describe_files(bundle_dir: Path) -> dict[str, dict[str, Any]]:
    """The manifest's `files` entry for the bundle files in BUNDLE_DIR: SHA-256 and size."""
    return {
        name: {
            "sha256": file_sha256(bundle_dir / name),
            "bytes": (bundle_dir / name).stat().st_size,
        }
        for name in fmt.BUNDLE_FILES
    }


def check_bundle_files(path: Path, manifest: Manifest, *, verify_hashes: bool) -> None:
    """Every file the manifest lists is there with its size (and, if asked, its SHA-256)."""
    for name, entry in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise BundleLoadError(f"{path}: {name} is missing")
        size = file.stat().st_size
        if size != entry.bytes:
            raise BundleLoadError(
                f"{path}: {name} has {size} bytes, the manifest says {entry.bytes}"
            )
        if verify_hashes:
            digest = file_sha256(file)
            if digest != entry.sha256:
                raise BundleLoadError(
                    f"{path}: {name} has SHA-256 {digest}, the manifest says {entry.sha256}"
                )


def write_manifest(bundle_dir: Path, document: Mapping[str, Any]) -> Manifest:
    """Check DOCUMENT as a loader would, then write it as BUNDLE_DIR/manifest.json."""
    manifest = parse_manifest(
        {"format_version": FORMAT_VERSION, **document}, source=f"manifest of {bundle_dir}"
    )
    text = json.dumps(dict(manifest.raw), indent=2)
    (bundle_dir / fmt.MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def read_manifest(bundle_dir: Path) -> Manifest:
    """The checked manifest of BUNDLE_DIR; raises BundleLoadError naming what is wrong."""
    path = bundle_dir / fmt.MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleLoadError(f"{bundle_dir}: manifest.json is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise BundleLoadError(f"{path}: cannot read: {error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise BundleLoadError(f"{path}: not valid JSON: {error}") from error
    return parse_manifest(data, source=str(path))


def parse_manifest(data: Any, *, source: str = "manifest.json") -> Manifest:
    if not isinstance(data, dict):
        raise BundleLoadError(f"{source}: must be a JSON object, got {type(data).__name__}")
    format_version = _field(data, "format_version", int, source)
    if format_version not in SUPPORTED_FORMAT_VERSIONS:
        raise BundleLoadError(
            f"{source}: format_version {format_version} is not supported "
            f"(this service reads {', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))})"
        )
    count = _field(data, "count", int, source)
    dim = _field(data, "embedding_dim", int, source)
    if count < 1:
        raise BundleLoadError(f"{source}: count must be at least 1, got {count}")
    if dim < 1:
        raise BundleLoadError(f"{source}: embedding_dim must be at least 1, got {dim}")
    return Manifest(
        format_version=format_version,
        version=_field(data, "version", str, source),
        created_at=str(data.get("created_at", "")),
        count=count,
        embedding_dim=dim,
        index=_parse_index(_field(data, "index", dict, source), source),
        files=_parse_files(_field(data, "files", dict, source), source),
        raw=data,
        locate=_parse_locate(data.get("locate", {}), source),
        images_root=_parse_images_root(data.get("images_root"), source),
        vectors_dtype=_parse_vectors_dtype(data, format_version, source),
    )


def _parse_vectors_dtype(data: Mapping[str, Any], format_version: int, source: str) -> str:
    if format_version == 1:
        if "vectors_dtype" in data:
            raise BundleLoadError(f"{source}: vectors_dtype needs format_version 2")
        return "float32"
    dtype = _field(data, "vectors_dtype", str, source)
    if dtype not in VECTOR_DTYPES:
        raise BundleLoadError(
            f"{source}: vectors_dtype must be one of {', '.join(VECTOR_DTYPES)}, got {dtype!r}"
        )
    return dtype


def _parse_images_root(root: Any, source: str) -> Path | None:
    if root is None:
        return None
    if not isinstance(root, str) or not Path(root).is_absolute():
        raise BundleLoadError(f"{source}: images_root must be an absolute path, got {root!r}")
    return Path(root)


def _parse_locate(locate: Any, source: str) -> LocateInfo:
    """The optional `locate` entry; bundles written before it have the defaults and no
    calibration."""
    if not isinstance(locate, dict):
        raise BundleLoadError(f"{source}: locate must be an object")
    radius = locate.get("cluster_radius_m", DEFAULT_CLUSTER_RADIUS_M)
    k = locate.get("k", DEFAULT_LOCATE_K)
    if not (isinstance(radius, int | float) and math.isfinite(radius) and radius > 0):
        raise BundleLoadError(
            f"{source}: locate.cluster_radius_m must be positive, got {radius!r}"
        )
    if type(k) is not int or k < 1:
        raise BundleLoadError(f"{source}: locate.k must be an integer >= 1, got {k!r}")
    calibration = None
    if locate.get("calibration") is not None:
        try:
            calibration = Calibration.from_dict(locate["calibration"])
        except (KeyError, TypeError, ValueError) as error:
            raise BundleLoadError(f"{source}: locate.calibration: {error}") from error
    return LocateInfo(float(radius), k, calibration)


def _parse_index(index: dict[str, Any], source: str) -> IndexInfo:
    index_type = _field(index, "type", str, f"{source}: index")
    if index_type not in INDEX_TYPES:
        raise BundleLoadError(
            f"{source}: index.type {index_type!r} is not one of {', '.join(INDEX_TYPES)}"
        )
    metric = _field(index, "metric", str, f"{source}: index")
    if metric != "inner_product":
        raise BundleLoadError(f"{source}: index.metric must be 'inner_product', got {metric!r}")
    params = index.get("params", {})
    if not isinstance(params, dict):
        raise BundleLoadError(f"{source}: index.params must be an object")
    rerank = params.get("rerank", 1)
    if type(rerank) is not int or rerank < 1:
        raise BundleLoadError(
            f"{source}: index.params.rerank must be an integer >= 1, got {rerank!r}"
        )
    recall = index.get("recall_at_10")
    if recall is not None and not (isinstance(recall, int | float) and math.isfinite(recall)):
        raise BundleLoadError(f"{source}: index.recall_at_10 must be a number, got {recall!r}")
    return IndexInfo(
        type=index_type,
        metric=metric,
        params=params,
        recall_at_10=None if recall is None else float(recall),
    )


def _parse_files(files: dict[str, Any], source: str) -> dict[str, FileEntry]:
    entries: dict[str, FileEntry] = {}
    for name, entry in files.items():
        if "/" in name or "\\" in name or name in ("", ".", "..") or name == fmt.MANIFEST:
            raise BundleLoadError(f"{source}: files names {name!r}, not a file of the bundle")
        where = f"{source}: files[{name!r}]"
        if not isinstance(entry, dict):
            raise BundleLoadError(f"{where} must be an object with sha256 and bytes")
        digest = _field(entry, "sha256", str, where).lower()
        size = _field(entry, "bytes", int, where)
        if not _SHA256.fullmatch(digest):
            raise BundleLoadError(f"{where}: sha256 {digest!r} is not 64 hex digits")
        if size < 0:
            raise BundleLoadError(f"{where}: bytes must be non-negative, got {size}")
        entries[name] = FileEntry(sha256=digest, bytes=size)
    missing = [name for name in REQUIRED_FILES if name not in entries]
    if missing:
        raise BundleLoadError(f"{source}: files does not list {', '.join(missing)}")
    return entries


def _field(data: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise BundleLoadError(f"{where}: missing field {key!r}")
    value = data[key]
    # bool is an int subclass: a JSON true is not a count.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BundleLoadError(
            f"{where}: field {key!r} must be {kind.__name__}, got {type(value).__name__}"
        )
    return value
