"""Per-view photometric change: saturation, cast shadow, white balance, exposure, contrast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

SHADOW_TINT = (0.92, 0.97, 1.08)
LUMA = np.array([0.299, 0.587, 0.114])
LEVELS = np.arange(256, dtype=np.float64) / 255.0


@dataclass(frozen=True)
class Lighting:
    """Photometric settings of one view; shadow is a polygon in image fractions or empty."""

    brightness: float
    contrast: float
    white_balance: tuple[float, float, float]
    saturation: float
    gamma: float
    shadow: tuple[tuple[float, float], ...]
    shadow_strength: float


def sample_lighting(rng: np.random.Generator) -> Lighting:
    """Draw lighting from daylight-like ranges (overcast to low sun, warm to cool)."""
    warmth = float(rng.uniform(-0.18, 0.18))
    tint = float(rng.uniform(-0.06, 0.06))
    shadow: tuple[tuple[float, float], ...] = ()
    if rng.random() < 0.5:
        left, right = (float(v) for v in rng.uniform(0.1, 0.95, size=2))
        shadow = ((0.0, left), (1.0, right), (1.0, 1.0), (0.0, 1.0))
        if rng.random() < 0.35:
            shadow = ((0.0, 0.0), (1.0, 0.0), (1.0, right), (0.0, left))
    return Lighting(
        brightness=float(rng.uniform(0.6, 1.3)),
        contrast=float(rng.uniform(0.7, 1.2)),
        white_balance=(1.0 + warmth, 1.0 + tint, 1.0 - warmth),
        saturation=float(rng.uniform(0.45, 1.3)),
        gamma=float(rng.uniform(0.8, 1.25)),
        shadow=shadow,
        shadow_strength=float(rng.uniform(0.45, 0.8)),
    )


def _channel_lut(transfer: np.ndarray) -> list[int]:
    """Concatenated 3 x 256 lookup table from a (3, 256) array of 0-1 outputs."""
    return np.clip(np.rint(transfer * 255.0), 0, 255).astype(np.uint8).ravel().tolist()


def apply_lighting(image: Image.Image, lighting: Lighting) -> Image.Image:
    """Return an RGB copy of image under the given lighting."""
    photo = ImageEnhance.Color(image.convert("RGB")).enhance(lighting.saturation)
    if lighting.shadow:
        w, h = photo.size
        mask = Image.new("L", photo.size, 0)
        ImageDraw.Draw(mask).polygon([(x * w, y * h) for x, y in lighting.shadow], fill=255)
        darkening = lighting.shadow_strength * np.asarray(SHADOW_TINT)
        shaded = photo.point(_channel_lut(np.outer(darkening, LEVELS)))
        photo = Image.composite(shaded, photo, mask)
    gains = np.asarray(lighting.white_balance) * lighting.brightness
    exposed = np.clip(np.outer(gains, LEVELS), 0.0, 1.0)
    channel_means = np.asarray(photo.reduce(8), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    mean = float(np.clip(channel_means / 255.0 * gains, 0.0, 1.0) @ LUMA)
    stretched = np.clip((exposed - mean) * lighting.contrast + mean, 0.0, 1.0)
    return photo.point(_channel_lut(stretched**lighting.gamma))
