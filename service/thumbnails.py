"""JPEG thumbnails of indexed images, made from the originals the bundle records, kept in a
bounded in-memory cache.

Only a row of the bundle names a file: its `path` (written by the pipeline) under the
manifest's `images_root`; nothing of the request reaches the filesystem but the image id,
looked up in the bundle's table.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

from cachetools import LRUCache

from geotriplet_assets.bundle.errors import OriginalUnavailable
from geotriplet_assets.bundle.image_decode import ImageRejected, decode_thumbnail
from geotriplet_assets.bundle.load import LoadedBundle

MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 64, 512, 256
JPEG_QUALITY = 85


class ThumbnailUnavailable(LookupError):
    """The image is indexed, but its original cannot be read (not recorded, absent, bad)."""


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    etag: str


class Thumbnails:
    """Thumbnails by (bundle version, row, size), at most MAX_BYTES of JPEG kept."""

    def __init__(self, max_bytes: int) -> None:
        self._cache: LRUCache[tuple[str, int, int], bytes] = LRUCache(
            maxsize=max_bytes, getsizeof=len
        )
        self._lock = threading.Lock()

    def get(self, bundle: LoadedBundle, row: int, size: int) -> Thumbnail:
        key = (bundle.version, row, size)
        etag = f'"{bundle.version}-{row}-{size}"'
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = _make(bundle, row, size)
            with self._lock:
                if len(cached) <= self._cache.maxsize:
                    self._cache[key] = cached
        return Thumbnail(cached, etag)


def _make(bundle: LoadedBundle, row: int, size: int) -> bytes:
    try:
        path = bundle.original_path(row)
    except OriginalUnavailable as error:
        raise ThumbnailUnavailable(str(error)) from error
    try:
        image = decode_thumbnail(path, size, bundle.decode_limits)
    except ImageRejected as rejected:
        raise ThumbnailUnavailable(
            f"the original photo of {bundle.images.image_id(row)} is not available here "
            f"({rejected.reason}); is the data mounted where the bundle says ({path.parent})?"
        ) from rejected
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
