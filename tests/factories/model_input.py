"""The normalised CHW float32 input timm's eval transform gives a model, from an image file or
bytes: what the tests compare the uint8 decode (normalised in the model's graph) against."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geotriplet_assets.bundle.image_decode import (
    decode_bytes_to_uint8,
    decode_to_uint8,
    normalise_pixels,
)
from geotriplet_assets.bundle.preprocessing import DEFAULT_LIMITS, DecodeLimits, Preprocessing


def decode_for_model(
    path: Path,
    preprocessing: Preprocessing,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    use_draft: bool = True,
) -> np.ndarray:
    """The CHW float32 model input for the image file at PATH; raises ImageRejected."""
    pixels = decode_to_uint8(path, preprocessing, limits, use_draft=use_draft)
    return normalise_pixels(pixels, preprocessing)


def decode_bytes_for_model(
    data: bytes,
    preprocessing: Preprocessing,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    use_draft: bool = True,
    name: str = "<bytes>",
) -> np.ndarray:
    """As `decode_for_model`, for an encoded image held in memory."""
    pixels = decode_bytes_to_uint8(data, preprocessing, limits, use_draft=use_draft, name=name)
    return normalise_pixels(pixels, preprocessing)
