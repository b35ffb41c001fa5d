"""A backbone wrapper that takes uint8 pixels and does the eval normalisation itself."""

from __future__ import annotations

import torch

from geotriplet_assets.bundle.preprocessing import Preprocessing


class PixelInputBackbone(torch.nn.Module):
    """(N, H, W, 3) uint8 RGB -> MODEL((pixels / 255 - mean) / std as N,3,H,W float32).

    The arithmetic is that of `image_decode.normalise_pixels`, so both give equal inputs.
    """

    def __init__(self, model: torch.nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.model = model
        shape = (1, 3, 1, 1)
        mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(shape)
        std = torch.tensor(preprocessing.std, dtype=torch.float32).view(shape)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        images = pixels.permute(0, 3, 1, 2).float() / 255
        return self.model((images - self.mean) / self.std)


def pixel_batch_shape(preprocessing: Preprocessing, batch: int) -> tuple[int, int, int, int]:
    """The (N, H, W, 3) shape of a batch of BATCH decoded crops."""
    return batch, preprocessing.height, preprocessing.width, 3
