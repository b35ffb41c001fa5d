"""Local features of a photo and the geometric check of a pair: OpenCV ORB keypoints, a
ratio test, and the inliers of a RANSAC homography (a facade is close to a plane).

ORB rather than SIFT, measured on the demo city's test split (`benchmarks/bench_rerank.py`
and docs/training.md): the same re-ranking gain, about ten times cheaper to extract (so the
features of indexed images are computed from their originals at query time, behind a
cache, instead of being stored in the bundle), and 32-byte binary descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_SIDE = 480
"""Photos are scaled to fit MAX_SIDE x MAX_SIDE before detection."""
MAX_FEATURES = 1000
RATIO = 0.8
"""Lowe's ratio test: a match is kept when it is clearly better than the second best."""
RANSAC_THRESHOLD_PX = 6.0
RANSAC_ITERATIONS = 500
RANSAC_CONFIDENCE = 0.995
MIN_MATCHES = 8

cv2.setNumThreads(1)  # requests run in parallel threads; OpenCV's own pool would contend


@dataclass(frozen=True)
class LocalFeatures:
    """(n, 2) float32 keypoint positions and their (n, 32) uint8 ORB descriptors."""

    points: np.ndarray
    descriptors: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.points.nbytes + self.descriptors.nbytes)

    def __len__(self) -> int:
        return len(self.points)


_EMPTY = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))


def extract_features(gray: np.ndarray) -> LocalFeatures:
    """ORB features of a (H, W) uint8 grayscale photo that fits MAX_SIDE x MAX_SIDE."""
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(f"expected a (H, W) uint8 image, got {gray.dtype} {gray.shape}")
    keypoints, descriptors = cv2.ORB_create(nfeatures=MAX_FEATURES).detectAndCompute(gray, None)
    if descriptors is None or not keypoints:
        return _EMPTY
    points = np.array([keypoint.pt for keypoint in keypoints], dtype=np.float32)
    return LocalFeatures(points, descriptors)


def count_inliers(query: LocalFeatures, candidate: LocalFeatures) -> int:
    """Matches of the two photos that agree with one homography (0 when too few match)."""
    if len(query) < 2 or len(candidate) < 2:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(query.descriptors, candidate.descriptors, k=2)
    good = [
        pair[0] for pair in pairs if len(pair) == 2 and pair[0].distance < RATIO * pair[1].distance
    ]
    if len(good) < MIN_MATCHES:
        return 0
    source = query.points[[match.queryIdx for match in good]]
    target = candidate.points[[match.trainIdx for match in good]]
    try:
        _, mask = cv2.findHomography(
            source,
            target,
            cv2.RANSAC,
            RANSAC_THRESHOLD_PX,
            maxIters=RANSAC_ITERATIONS,
            confidence=RANSAC_CONFIDENCE,
        )
    except cv2.error:  # a degenerate configuration (all points on a line)
        return 0
    return 0 if mask is None else int(mask.sum())
