"""Street furniture drawn in front of a view as simple shapes: trees, cars, poles, pedestrians."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import ImageDraw

from geotriplet_assets.synth.facade import RGB

FOLIAGE: tuple[RGB, ...] = ((52, 92, 40), (70, 112, 48), (38, 70, 34), (96, 120, 52))
CAR_PAINT: tuple[RGB, ...] = (
    (200, 200, 204),
    (30, 30, 34),
    (150, 20, 24),
    (40, 60, 120),
    (220, 220, 210),
)
CLOTHES: tuple[RGB, ...] = (
    (30, 30, 40),
    (120, 40, 40),
    (60, 80, 140),
    (200, 190, 170),
    (80, 80, 80),
)
TRUNK: RGB = (82, 60, 44)
METAL: RGB = (52, 54, 58)
TYRE: RGB = (20, 20, 22)
CAR_GLASS: RGB = (60, 72, 84)
SKIN: RGB = (196, 150, 120)


def _colour(rng: np.random.Generator, palette: tuple[RGB, ...]) -> RGB:
    return palette[int(rng.integers(len(palette)))]


def _tree(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, base: float, s: float
) -> None:
    height = s * rng.uniform(0.4, 0.85)
    trunk = height * 0.05
    draw.rectangle((x - trunk, base - height * 0.55, x + trunk, base), fill=TRUNK)
    green = _colour(rng, FOLIAGE)
    crown_y, crown_r = base - height * 0.7, height * rng.uniform(0.22, 0.36)
    for _ in range(int(rng.integers(3, 7))):
        dx, dy = rng.normal(0.0, crown_r * 0.45, size=2)
        r = crown_r * rng.uniform(0.55, 1.0)
        shade = tuple(int(c * rng.uniform(0.8, 1.15)) for c in green)
        draw.ellipse((x + dx - r, crown_y + dy - r, x + dx + r, crown_y + dy + r), fill=shade)


def _car(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, base: float, s: float
) -> None:
    length = s * rng.uniform(0.3, 0.6)
    height = length * rng.uniform(0.28, 0.4)
    paint = _colour(rng, CAR_PAINT)
    body_top = base - height * 0.55
    draw.rounded_rectangle(
        (x - length / 2, body_top, x + length / 2, base - height * 0.12),
        radius=height * 0.15,
        fill=paint,
    )
    cabin = [
        (x - length * 0.3, body_top),
        (x - length * 0.18, base - height),
        (x + length * 0.2, base - height),
        (x + length * 0.34, body_top),
    ]
    draw.polygon(cabin, fill=paint)
    inset = height * 0.08
    draw.polygon(
        [
            (cabin[0][0] + inset * 2, body_top),
            (cabin[1][0] + inset, cabin[1][1] + inset),
            (cabin[2][0] - inset, cabin[2][1] + inset),
            (cabin[3][0] - inset * 2, body_top),
        ],
        fill=CAR_GLASS,
    )
    wheel = height * 0.22
    for wx in (x - length * 0.3, x + length * 0.3):
        draw.ellipse((wx - wheel, base - 2 * wheel, wx + wheel, base), fill=TYRE)


def _pole(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, base: float, s: float
) -> None:
    width = max(1.0, s * rng.uniform(0.008, 0.02))
    top = base - s * rng.uniform(0.5, 1.1)
    draw.rectangle((x - width, top, x + width, base), fill=METAL)
    if rng.random() < 0.5:
        arm = s * rng.uniform(0.05, 0.12) * rng.choice([-1.0, 1.0])
        draw.line((x, top + width * 2, x + arm, top), fill=METAL, width=max(1, int(width)))
    else:
        sign_w = s * 0.05
        draw.rectangle(
            (x - sign_w, top, x + sign_w, top + sign_w * 1.4), fill=_colour(rng, CAR_PAINT)
        )


def _pedestrian(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, x: float, base: float, s: float
) -> None:
    height = s * rng.uniform(0.14, 0.34)
    head = height * 0.08
    body_w = height * 0.13
    draw.rectangle(
        (x - body_w, base - height * 0.45, x + body_w, base), fill=_colour(rng, CLOTHES)
    )
    draw.rectangle(
        (x - body_w * 1.1, base - height * 0.82, x + body_w * 1.1, base - height * 0.45),
        fill=_colour(rng, CLOTHES),
    )
    draw.ellipse((x - head, base - height, x + head, base - height + 2 * head), fill=SKIN)


OccluderPainter = Callable[[ImageDraw.ImageDraw, np.random.Generator, float, float, float], None]
PAINTERS: dict[str, OccluderPainter] = {
    "tree": _tree,
    "car": _car,
    "pole": _pole,
    "pedestrian": _pedestrian,
}


def draw_random_occluders(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, image_size: int, count: int
) -> list[str]:
    """Draw count occluders standing near the bottom of the image; return their kinds."""
    kinds = list(PAINTERS)
    drawn = []
    for _ in range(count):
        kind = kinds[int(rng.choice(len(kinds), p=[0.3, 0.3, 0.2, 0.2]))]
        x = float(rng.uniform(-0.05, 1.05) * image_size)
        base = float(rng.uniform(0.82, 1.05) * image_size)
        PAINTERS[kind](draw, rng, x, base, float(image_size))
        drawn.append(kind)
    return drawn
