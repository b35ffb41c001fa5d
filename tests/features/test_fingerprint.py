import pandas as pd

from geotriplet_assets.features.fingerprint import images_fingerprint

IMAGES = pd.DataFrame(
    {
        "image_id": ["a/1", "a/2"],
        "path": ["a/1.jpg", "a/2.jpg"],
        "file_size": [100, 200],
        "mtime_ns": [5, 6],
    }
)
SETTINGS = {"model_name": "m", "weights_sha256": "abc"}


def test_fingerprint_ignores_row_order_but_not_content_or_settings() -> None:
    base = images_fingerprint(IMAGES, SETTINGS)
    assert images_fingerprint(IMAGES.iloc[::-1], SETTINGS) == base
    touched = IMAGES.assign(mtime_ns=[5, 7])
    assert images_fingerprint(touched, SETTINGS) != base
    assert images_fingerprint(IMAGES.iloc[:1], SETTINGS) != base
    assert images_fingerprint(IMAGES, {**SETTINGS, "weights_sha256": "def"}) != base
