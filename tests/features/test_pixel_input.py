import os

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from geotriplet_assets.bundle.image_decode import normalise_pixels
from geotriplet_assets.bundle.preprocessing import Preprocessing
from geotriplet_assets.features.backbone import BackboneSpec, load_torch_backbone
from geotriplet_assets.features.pixel_input import PixelInputBackbone, pixel_batch_shape

PREPROCESSING = Preprocessing(
    input_size=(3, 24, 32),
    interpolation="bicubic",
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    crop_pct=0.875,
    crop_mode="center",
)


def random_crops(count: int, preprocessing: Preprocessing) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, pixel_batch_shape(preprocessing, count), dtype=np.uint8)


def test_normalises_exactly_as_the_decoder_does() -> None:
    crops = random_crops(3, PREPROCESSING)
    crops[0, 0, 0] = (0, 255, 128)  # the extremes of every channel
    wrapped = PixelInputBackbone(torch.nn.Identity(), PREPROCESSING)
    with torch.inference_mode():
        images = wrapped(torch.from_numpy(crops)).numpy()
    expected = np.stack([normalise_pixels(crop, PREPROCESSING) for crop in crops])
    assert images.shape == (3, 3, 24, 32)
    np.testing.assert_array_equal(images, expected)


def test_backbone_output_matches_the_float_input_from_the_decoder() -> None:
    model, preprocessing, _ = load_torch_backbone(
        BackboneSpec("test_efficientnet", weights="random", seed=2)
    )
    crops = random_crops(2, preprocessing)
    floats = torch.from_numpy(np.stack([normalise_pixels(c, preprocessing) for c in crops]))
    with torch.inference_mode():
        direct = model(floats)
        wrapped = PixelInputBackbone(model, preprocessing)(torch.from_numpy(crops))
    # Permuted NHWC input is channels-last in memory: convolutions sum in another order.
    torch.testing.assert_close(wrapped, direct, rtol=1e-5, atol=1e-6)
    assert pixel_batch_shape(preprocessing, 5) == (5, *preprocessing.input_size[1:], 3)
