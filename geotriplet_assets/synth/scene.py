"""A street elevation around one target: its facade between its neighbours, on a pavement.

The canvas is RGB with a sky gradient above the roofs and road far below the pavement, so a
view's warp never runs off it except into sky. Canvas x = 0 is the target point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from geotriplet_assets.synth.facade import RGB, FacadeGeometry
from geotriplet_assets.synth.facade_render import render_facade

SKY_TOP: RGB = (112, 150, 204)
SKY_LOW: RGB = (198, 212, 228)
ROAD_COLOUR: RGB = (88, 88, 90)
PAVEMENT_COLOUR: RGB = (168, 166, 158)
KERB_COLOUR: RGB = (120, 120, 118)
FAR_WALL_COLOUR: RGB = (150, 146, 140)
PAVEMENT_DEPTH_M = 1.2
GROUND_DEPTH_M = 45.0
SKY_DEPTH_M = 12.0
SKY_BAND_PX = 6
FAR_WALL_WIDTH_M = 45.0
FAR_WALL_HEIGHT_M = 11.0


@dataclass(frozen=True)
class SceneCanvas:
    """The elevation image, where it lies on the facade plane, and its halved copies.

    Level k is the image reduced 2**k times; warping from the level closest to the output's
    resolution avoids aliasing and is several times faster than warping from level 0.
    """

    image: Image.Image
    px_per_m: float
    x_min_m: float
    y_max_m: float
    _levels: dict[int, Image.Image] = field(default_factory=dict, compare=False, repr=False)

    def level(self, k: int) -> Image.Image:
        """The canvas reduced 2**k times (k = 0 is the canvas itself)."""
        if k == 0:
            return self.image
        if k not in self._levels:
            self._levels[k] = self.level(k - 1).reduce(2)
        return self._levels[k]

    def canvas_to_plane(self, k: int = 0) -> np.ndarray:
        """3x3 map from level-k pixels (u, v, 1) to facade-plane metres (x, y, 1)."""
        s = self.px_per_m / 2**k
        return np.array([[1 / s, 0.0, self.x_min_m], [0.0, -1 / s, self.y_max_m], [0, 0, 1.0]])


def _sky(size: tuple[int, int], horizon_row: int) -> Image.Image:
    """Canvas filled with a vertical sky gradient in bands down to horizon_row."""
    canvas = Image.new("RGB", size, SKY_LOW)
    draw = ImageDraw.Draw(canvas)
    top, low = np.asarray(SKY_TOP, np.float64), np.asarray(SKY_LOW, np.float64)
    for start in range(0, horizon_row, SKY_BAND_PX):
        colour = top + (low - top) * (start / max(horizon_row, 1))
        r, g, b = (int(c) for c in np.rint(colour))
        draw.rectangle((0, start, size[0], start + SKY_BAND_PX - 1), fill=(r, g, b))
    return canvas


@lru_cache(maxsize=16)
def _facade_image(geometry: FacadeGeometry, px_per_m: float) -> Image.Image:
    return render_facade(geometry, px_per_m)


def build_scene(
    target: FacadeGeometry, left: FacadeGeometry, right: FacadeGeometry, px_per_m: float
) -> SceneCanvas:
    """Compose left neighbour, target facade and right neighbour around the target point."""
    target_left = -target.width_m / 2 - target.target_x_m
    spans = [
        (left, target_left - left.width_m),
        (target, target_left),
        (right, target_left + target.width_m),
    ]
    x_min = spans[0][1] - FAR_WALL_WIDTH_M
    x_max = spans[2][1] + right.width_m + FAR_WALL_WIDTH_M
    y_max = max(g.total_height_m for g, _ in spans) + SKY_DEPTH_M
    size = (math.ceil((x_max - x_min) * px_per_m), math.ceil((y_max + GROUND_DEPTH_M) * px_per_m))
    canvas = _sky(size, round(y_max * px_per_m))
    draw = ImageDraw.Draw(canvas)

    def row(y_m: float) -> float:
        return (y_max - y_m) * px_per_m

    draw.rectangle((0, row(FAR_WALL_HEIGHT_M), size[0], row(0)), fill=FAR_WALL_COLOUR)
    for geometry, left_m in spans:
        image = _facade_image(geometry, px_per_m)
        corner = (round((left_m - x_min) * px_per_m), round(row(geometry.total_height_m)))
        canvas.paste(image, corner, image)
    draw.rectangle((0, row(0), size[0], row(-PAVEMENT_DEPTH_M)), fill=PAVEMENT_COLOUR)
    draw.rectangle((0, row(-PAVEMENT_DEPTH_M), size[0], size[1]), fill=ROAD_COLOUR)
    kerb = row(-PAVEMENT_DEPTH_M)
    draw.rectangle((0, kerb - 0.15 * px_per_m, size[0], kerb), fill=KERB_COLOUR)
    return SceneCanvas(canvas, px_per_m, x_min, y_max)
