"""Geometric re-ranking: the best candidates of a search re-scored by local-feature matching
between the query photo and each candidate's original photo.

combined score = global score + INLIER_WEIGHT * min(inliers, INLIER_CAP) / INLIER_CAP

so a candidate that shares a verified plane with the query (tens of inliers) moves above
candidates the embedding ranked a little higher, and without verified matches the global
order stands. The weight and the cap were chosen on the demo city's val split
(docs/training.md). Features of the originals are computed when first needed and kept in
a cache bounded in bytes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cachetools import LRUCache

from geotriplet_assets.bundle.errors import OriginalUnavailable
from geotriplet_assets.bundle.image_decode import (
    ImageRejected,
    decode_bytes_thumbnail,
    decode_thumbnail,
)
from geotriplet_assets.bundle.load import LoadedBundle
from geotriplet_assets.bundle.local_features import (
    MAX_SIDE,
    LocalFeatures,
    count_inliers,
    extract_features,
)
from geotriplet_assets.bundle.search import Neighbour

DEFAULT_TOP = 20
MAX_TOP = 50
INLIER_WEIGHT = 0.5
INLIER_CAP = 50


@dataclass(frozen=True)
class Verified:
    """A candidate after re-ranking: the hit, its inliers with the query, the combined score."""

    neighbour: Neighbour
    inliers: int | None
    rerank_score: float | None


def combined_score(score: float, inliers: int) -> float:
    return score + INLIER_WEIGHT * min(inliers, INLIER_CAP) / INLIER_CAP


def upload_features(bundle: LoadedBundle, data: bytes) -> LocalFeatures:
    """Local features of an uploaded photo (decoded within the bundle's limits)."""
    image = decode_bytes_thumbnail(data, MAX_SIDE, bundle.decode_limits, mode="L", name="image")
    return extract_features(np.asarray(image, dtype=np.uint8))


class Reranker:
    """Re-ranks hits of one or more bundles; features of originals cached by (version, row)."""

    def __init__(self, cache_bytes: int) -> None:
        self._cache: LRUCache[tuple[str, int], LocalFeatures] = LRUCache(
            maxsize=max(cache_bytes, 1), getsizeof=lambda features: max(features.nbytes, 1)
        )
        self._lock = threading.Lock()

    @property
    def cached_bytes(self) -> int:
        return int(self._cache.currsize)

    def row_features(self, bundle: LoadedBundle, row: int) -> LocalFeatures:
        """Local features of ROW's original; raises OriginalUnavailable."""
        key = (bundle.version, row)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        path = bundle.original_path(row)
        try:
            image = decode_thumbnail(path, MAX_SIDE, bundle.decode_limits, mode="L")
        except ImageRejected as rejected:
            raise OriginalUnavailable(
                f"the original photo of {bundle.images.image_id(row)} is not available here "
                f"({rejected.reason}); is the data mounted where the bundle says ({path.parent})?"
            ) from rejected
        features = extract_features(np.asarray(image, dtype=np.uint8))
        with self._lock:
            if features.nbytes <= self._cache.maxsize:
                self._cache[key] = features
        return features

    def rerank(
        self,
        bundle: LoadedBundle,
        query: LocalFeatures,
        hits: Sequence[Neighbour],
        top: int,
    ) -> list[Verified]:
        """HITS with the first TOP re-ordered by combined score (ties keep the search's
        order); the rest follow unchanged. Raises OriginalUnavailable."""
        head, tail = list(hits[:top]), hits[top:]
        scored = []
        for hit in head:
            inliers = count_inliers(query, self.row_features(bundle, hit.row))
            scored.append((combined_score(hit.score, inliers), inliers, hit))
        scored.sort(key=lambda item: -item[0])
        verified = [Verified(hit, inliers, score) for score, inliers, hit in scored]
        return verified + [Verified(hit, None, None) for hit in tail]
