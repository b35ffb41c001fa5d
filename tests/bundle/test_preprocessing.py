"""The eval transform a bundle records: its JSON round trip and its validation."""

from __future__ import annotations

import pytest

from geotriplet_assets.bundle.preprocessing import Preprocessing, PreprocessingError


def test_preprocessing_json_round_trip_and_validation() -> None:
    preprocessing = Preprocessing(
        (3, 200, 300), "bilinear", (0.4, 0.5, 0.6), (0.2, 0.3, 0.4), 0.9, "squash"
    )
    assert Preprocessing.from_json(preprocessing.to_json()) == preprocessing
    with pytest.raises(PreprocessingError, match="invalid preprocessing JSON"):
        Preprocessing.from_json('{"input_size": [3, 224, 224]}')
    with pytest.raises(PreprocessingError, match="border"):
        Preprocessing((3, 224, 224), "bicubic", (0.5,) * 3, (0.5,) * 3, 1.0, "border")
    with pytest.raises(PreprocessingError, match="crop_pct"):
        Preprocessing((3, 224, 224), "bicubic", (0.5,) * 3, (0.5,) * 3, 1.2, "center")
