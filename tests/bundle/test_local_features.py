"""ORB features and the RANSAC inlier count on real photographs: two views of one Leuven
building (Debian's opencv-doc) share a plane; a different building does not."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geotriplet_assets.bundle.image_decode import decode_thumbnail
from geotriplet_assets.bundle.local_features import (
    MAX_FEATURES,
    MAX_SIDE,
    count_inliers,
    extract_features,
)

OPENCV_EXAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")


def _gray(path: Path) -> np.ndarray:
    return np.asarray(decode_thumbnail(path, MAX_SIDE, mode="L"), dtype=np.uint8)


@pytest.fixture(scope="module")
def leuven() -> tuple[np.ndarray, np.ndarray]:
    paths = [OPENCV_EXAMPLES / "leuvenA.jpg", OPENCV_EXAMPLES / "leuvenB.jpg"]
    if not all(path.is_file() for path in paths):
        if os.environ.get("GEOTRIPLET_REQUIRE_REAL_PHOTOS"):
            pytest.fail("leuvenA.jpg / leuvenB.jpg missing: install Debian's opencv-doc")
        pytest.skip("Debian's opencv-doc is not installed")
    return _gray(paths[0]), _gray(paths[1])


def test_two_views_of_one_building_share_many_inliers_a_different_scene_few(
    leuven: tuple[np.ndarray, np.ndarray], tiny_city_pipeline
) -> None:
    first, second = (extract_features(image) for image in leuven)
    assert 100 <= len(first) <= MAX_FEATURES
    assert first.points.dtype == np.float32 and first.descriptors.shape == (len(first), 32)
    same = count_inliers(first, second)
    synthetic = next(tiny_city_pipeline.city.rglob("*.jpg"))
    other = count_inliers(first, extract_features(_gray(synthetic)))
    assert same >= 30
    assert other < same / 3


def test_a_blank_photo_has_no_features_and_no_inliers() -> None:
    blank = extract_features(np.full((200, 300), 128, np.uint8))
    assert len(blank) == 0 and blank.nbytes == 0
    textured = extract_features(
        np.asarray(Image.effect_noise((300, 200), 80).convert("L"), dtype=np.uint8)
    )
    assert count_inliers(blank, textured) == 0
    assert count_inliers(textured, blank) == 0


def test_only_a_grayscale_uint8_image_is_accepted() -> None:
    with pytest.raises(ValueError, match=r"\(H, W\) uint8"):
        extract_features(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W\) uint8"):
        extract_features(np.zeros((10, 10), np.float32))
