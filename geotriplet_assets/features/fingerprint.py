"""Content fingerprints that decide whether an artefact can be reused instead of recomputed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pandas as pd

_IMAGE_IDENTITY_COLUMNS = ["image_id", "path", "file_size", "mtime_ns"]


def images_fingerprint(images: pd.DataFrame, settings: Mapping[str, object]) -> str:
    """sha256 of the images' identities (id, file, size, mtime) and the settings that shape
    their embeddings (model, weights hash, preprocessing, decode limits)."""
    digest = hashlib.sha256()
    digest.update(json.dumps(dict(settings), sort_keys=True, default=str).encode("utf-8"))
    identity = images[_IMAGE_IDENTITY_COLUMNS].sort_values("image_id")
    for row in identity.itertuples(index=False):
        digest.update(f"{row.image_id}\0{row.path}\0{row.file_size}\0{row.mtime_ns}\n".encode())
    return digest.hexdigest()
