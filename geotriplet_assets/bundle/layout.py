"""Where bundles live: the files of a bundle, how bundle directories are named, and the
`current` pointer that names the live one (docs/bundle.md). Standard library only."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

CURRENT_POINTER = "current"
MANIFEST = "manifest.json"
MODEL = "model.onnx"
PREPROCESSING = "preprocessing.json"
INDEX = "index.faiss"
VECTORS = "vectors.npy"
IMAGES = "images.parquet"
BUNDLE_FILES = (MODEL, PREPROCESSING, INDEX, VECTORS, IMAGES)

_VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")


class BundleFormatError(ValueError):
    """A bundle directory or pointer that does not follow the bundle format."""


def bundle_version(created: datetime, content_sha256: str) -> str:
    """The directory name of a bundle: its UTC build time and the start of its content hash."""
    return f"{created.astimezone(UTC):%Y%m%dT%H%M%SZ}-{content_sha256[:8]}"


def is_bundle_version(name: str) -> bool:
    return bool(_VERSION_PATTERN.match(name))


def read_current_version(bundles_dir: Path) -> str | None:
    """The bundle name `current` points at, or None when nothing has been published."""
    pointer = bundles_dir / CURRENT_POINTER
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not is_bundle_version(name):
        raise BundleFormatError(f"{pointer} does not name a bundle: {name[:80]!r}")
    return name


def write_current_version(bundles_dir: Path, version: str) -> None:
    """Point `current` at VERSION by renaming a complete temporary file over it."""
    if not (bundles_dir / version).is_dir():
        raise BundleFormatError(f"no bundle {version} in {bundles_dir}")
    temporary = bundles_dir / f"{CURRENT_POINTER}.tmp-{os.getpid()}"
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(version + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, bundles_dir / CURRENT_POINTER)
    finally:
        temporary.unlink(missing_ok=True)
