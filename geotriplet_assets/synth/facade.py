"""Facade geometry: the identity of a synthetic building, sampled from a numpy Generator.

Identity lives in the layout (floors, window grid and shape, ornaments, balconies,
door and sign); colours come from small shared palettes so they do not identify.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RGB = tuple[int, int, int]

WALL_COLOURS: tuple[RGB, ...] = (
    (168, 84, 64),
    (214, 196, 160),
    (186, 186, 180),
    (232, 228, 214),
    (200, 160, 96),
    (132, 104, 84),
    (226, 208, 150),
    (120, 124, 128),
)
TRIM_COLOURS: tuple[RGB, ...] = ((240, 238, 230), (220, 208, 180), (70, 70, 72), (30, 32, 34))
GLASS_COLOURS: tuple[RGB, ...] = ((46, 58, 72), (78, 96, 112), (30, 34, 40))
SIGN_COLOURS: tuple[RGB, ...] = (
    (170, 30, 36),
    (28, 60, 130),
    (30, 110, 60),
    (24, 24, 24),
    (236, 236, 230),
)
MATERIALS = ("plaster", "brick", "stone")
WINDOW_TOPS = ("flat", "arch", "segment", "pointed")
MUNTINS = ("none", "cross", "vertical", "grid")
WINDOW_TRIMS = ("none", "sill", "lintel", "pediment", "surround")
BALCONIES = ("none", "all", "alternate", "middle", "continuous")
GROUND_FLOORS = ("shop", "arcade", "residential")
SIGNS = ("none", "band", "blade", "disc", "board")
CORNICES = ("none", "simple", "dentil")
ROOFS = ("flat", "gable", "mansard")


@dataclass(frozen=True)
class FacadeGeometry:
    """The frontal layout of one building facade, in metres."""

    width_m: float
    upper_floors: int
    floor_height_m: float
    ground_floor_height_m: float
    columns: int
    side_margin_m: float
    window_width_frac: float
    window_aspect: float
    window_top: str
    muntins: str
    window_trim: str
    shutters: bool
    balconies: str
    string_courses: bool
    pilaster_every: int
    blind_column: int
    ground_floor: str
    door_column: int
    door_arched: bool
    sign: str
    sign_column: int
    sign_glyphs: tuple[float, ...]
    cornice: str
    roof: str
    rustication: bool
    material: str
    wall_colour: RGB
    trim_colour: RGB
    glass_colour: RGB
    sign_colour: RGB
    target_x_m: float
    target_height_m: float

    @property
    def wall_height_m(self) -> float:
        """Height of the walls from the ground to the top of the cornice."""
        return self.ground_floor_height_m + self.upper_floors * self.floor_height_m

    @property
    def total_height_m(self) -> float:
        """Height including the roof shape."""
        roof = {"flat": 0.0, "gable": 0.28 * self.width_m, "mansard": self.floor_height_m}
        return self.wall_height_m + min(roof[self.roof], 8.0)

    @property
    def column_pitch_m(self) -> float:
        """Horizontal distance between window centres."""
        return (self.width_m - 2.0 * self.side_margin_m) / self.columns


def _pick(rng: np.random.Generator, options: tuple[str, ...], weights: list[float]) -> str:
    p = np.asarray(weights, dtype=np.float64)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def _colour(rng: np.random.Generator, palette: tuple[RGB, ...]) -> RGB:
    return palette[int(rng.integers(len(palette)))]


def sample_facade(rng: np.random.Generator, width_m: float | None = None) -> FacadeGeometry:
    """Draw a facade; width_m fixes the width (used by the street layout)."""
    width = float(rng.uniform(15.0, 36.0)) if width_m is None else width_m
    upper_floors = int(rng.integers(1, 8))
    floor_height = float(rng.uniform(2.9, 4.3))
    ground_height = float(rng.uniform(3.4, 5.6))
    margin = float(rng.uniform(0.6, 3.0))
    pitch = float(rng.uniform(2.0, 5.0))
    columns = int(np.clip(round((width - 2 * margin) / pitch), 2, 11))
    wall_height = ground_height + upper_floors * floor_height
    return FacadeGeometry(
        width_m=width,
        upper_floors=upper_floors,
        floor_height_m=floor_height,
        ground_floor_height_m=ground_height,
        columns=columns,
        side_margin_m=margin,
        window_width_frac=float(rng.uniform(0.28, 0.72)),
        window_aspect=float(rng.uniform(0.7, 2.4)),
        window_top=_pick(rng, WINDOW_TOPS, [4, 2, 1.5, 1]),
        muntins=_pick(rng, MUNTINS, [2, 2, 1, 1]),
        window_trim=_pick(rng, WINDOW_TRIMS, [2, 2, 1.5, 1, 1.5]),
        shutters=bool(rng.random() < 0.25),
        balconies=_pick(rng, BALCONIES, [4, 1.5, 1, 1, 1]),
        string_courses=bool(rng.random() < 0.5),
        pilaster_every=int(rng.choice([0, 0, 0, 1, 2, 3])),
        blind_column=int(rng.integers(-1, columns)) if rng.random() < 0.3 else -1,
        ground_floor=_pick(rng, GROUND_FLOORS, [3, 1, 2]),
        door_column=int(rng.integers(columns)),
        door_arched=bool(rng.random() < 0.35),
        sign=_pick(rng, SIGNS, [2, 2, 1, 1, 1]),
        sign_column=int(rng.integers(columns)),
        sign_glyphs=tuple(float(g) for g in rng.uniform(0.3, 1.0, size=int(rng.integers(3, 8)))),
        cornice=_pick(rng, CORNICES, [1, 2, 1.5]),
        roof=_pick(rng, ROOFS, [4, 1, 1]),
        rustication=bool(rng.random() < 0.35),
        material=_pick(rng, MATERIALS, [2, 1.5, 1]),
        wall_colour=_colour(rng, WALL_COLOURS),
        trim_colour=_colour(rng, TRIM_COLOURS),
        glass_colour=_colour(rng, GLASS_COLOURS),
        sign_colour=_colour(rng, SIGN_COLOURS),
        target_x_m=float(rng.uniform(-0.12, 0.12) * width),
        target_height_m=float(np.clip(rng.uniform(0.3, 0.6) * wall_height, 3.0, 16.0)),
    )
