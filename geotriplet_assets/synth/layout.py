"""Where targets stand: rows of adjacent facades along street lines inside each city.

Planning is cheap and sequential; everything a target's images need is in its TargetPlan,
so targets can then be rendered in any order or process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geotriplet_assets.synth.cities import CitySpec
from geotriplet_assets.synth.config import SynthConfig
from geotriplet_assets.synth.facade import FacadeGeometry, sample_facade

MIN_BLOCK, MAX_BLOCK = 3, 8
MIN_WIDTH_M, MAX_WIDTH_M = 15.0, 36.0
BLOCK_CLEARANCE_M = 30.0
MAX_PLACEMENT_TRIES = 500
GEOMETRY_STREAM, VIEW_STREAM, FILLER_STREAM = 0, 1, 2  # fillers use 2 (left) and 3 (right)
LAYOUT_STREAM = 0xC17


@dataclass(frozen=True)
class TargetPlan:
    """One target: identity, position, facade and neighbours, and its images' file forms."""

    seed: int
    city: CitySpec
    target_id: int
    patch_id: int
    east_m: float
    north_m: float
    normal_azimuth_deg: float
    geometry: FacadeGeometry
    left: FacadeGeometry
    right: FacadeGeometry
    short_form: tuple[bool, ...]
    alignment_line: tuple[bool, ...]

    @property
    def view_count(self) -> int:
        """Number of images of this target."""
        return len(self.short_form)

    @property
    def is_distractor(self) -> bool:
        """A target seen in a single image."""
        return self.view_count == 1


def target_rng(seed: int, dataset_id: int, target_id: int, stream: int) -> np.random.Generator:
    """Independent generator for one target and purpose (geometry, views, fillers)."""
    return np.random.default_rng(np.random.SeedSequence([seed, dataset_id, target_id, stream]))


@dataclass(frozen=True)
class _Slot:
    east_m: float
    north_m: float
    normal_azimuth_deg: float
    width_m: float


def _place_block(
    rng: np.random.Generator, city: CitySpec, size: int, taken: list[tuple[float, float]]
) -> list[_Slot]:
    """A straight row of `size` adjacent facades clear of earlier targets and inside the city."""
    for _ in range(MAX_PLACEMENT_TRIES):
        bearing = city.street_bearing_deg + 90.0 * int(rng.integers(4)) + rng.normal(0.0, 2.0)
        along = np.array([math.sin(math.radians(bearing)), math.cos(math.radians(bearing))])
        radius = city.radius_m * 0.8 * math.sqrt(rng.random())
        angle = rng.uniform(0.0, 2 * math.pi)
        start = radius * np.array([math.cos(angle), math.sin(angle)])
        widths = rng.uniform(MIN_WIDTH_M, MAX_WIDTH_M, size=size)
        centres = np.cumsum(widths) - widths / 2
        points = start + centres[:, None] * along
        if np.any(np.hypot(points[:, 0], points[:, 1]) > city.radius_m * 0.95):
            continue
        if taken:
            gaps = np.hypot(*(points[:, None, :] - np.asarray(taken)[None]).transpose(2, 0, 1))
            if gaps.min() < BLOCK_CLEARANCE_M:
                continue
        normal = (bearing + 90.0) % 360.0
        return [
            _Slot(float(p[0]), float(p[1]), normal, float(w))
            for p, w in zip(points, widths, strict=True)
        ]
    raise RuntimeError(
        f"cannot place {size} more targets in {city.name} (radius {city.radius_m} m); "
        "lower targets_per_city or distractors_per_city"
    )


def _file_forms(
    rng: np.random.Generator, image_count: int, config: SynthConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly round(fraction * n) short-form images, and of the rest the `a`-line ones."""
    short = np.zeros(image_count, dtype=bool)
    short[rng.permutation(image_count)[: round(config.short_form_fraction * image_count)]] = True
    long_positions = np.flatnonzero(~short)
    with_a = round(config.alignment_line_fraction * long_positions.size)
    alignment = np.zeros(image_count, dtype=bool)
    alignment[rng.permutation(long_positions)[:with_a]] = True
    return short, alignment


def _filler(config: SynthConfig, city: CitySpec, target_id: int, side: int) -> FacadeGeometry:
    """A non-target building beside the end of a row (side 0: left, 1: right)."""
    rng = target_rng(config.seed, city.dataset_id, target_id, FILLER_STREAM + side)
    return sample_facade(rng)


def plan_city(city: CitySpec, config: SynthConfig) -> list[TargetPlan]:
    """All targets of one city, in street order, with TargetIDs 1..n."""
    rng = np.random.default_rng(
        np.random.SeedSequence([config.seed, city.dataset_id, LAYOUT_STREAM])
    )
    total = config.targets_per_city + config.distractors_per_city
    distractor = rng.permutation(np.arange(total) < config.distractors_per_city)
    views = np.where(
        distractor, 1, rng.integers(config.min_views, config.max_views + 1, size=total)
    )
    blocks: list[list[_Slot]] = []
    taken: list[tuple[float, float]] = []
    while (placed := sum(map(len, blocks))) < total:
        size = min(int(rng.integers(MIN_BLOCK, MAX_BLOCK + 1)), total - placed)
        block = _place_block(rng, city, size, taken)
        blocks.append(block)
        taken.extend((s.east_m, s.north_m) for s in block)
    patch_ids = rng.integers(1, 10_000_000, size=total)
    short, alignment = _file_forms(rng, int(views.sum()), config)
    plans: list[TargetPlan] = []
    target_id, image = 1, 0
    for block in blocks:
        geometries = [
            sample_facade(
                target_rng(config.seed, city.dataset_id, target_id + k, GEOMETRY_STREAM), s.width_m
            )
            for k, s in enumerate(block)
        ]
        for k, slot in enumerate(block):
            geometry, n = geometries[k], int(views[target_id - 1])
            along = math.radians(slot.normal_azimuth_deg - 90.0)
            plans.append(
                TargetPlan(
                    seed=config.seed,
                    city=city,
                    target_id=target_id,
                    patch_id=int(patch_ids[target_id - 1]),
                    east_m=slot.east_m + geometry.target_x_m * math.sin(along),
                    north_m=slot.north_m + geometry.target_x_m * math.cos(along),
                    normal_azimuth_deg=slot.normal_azimuth_deg,
                    geometry=geometry,
                    left=geometries[k - 1] if k > 0 else _filler(config, city, target_id, 0),
                    right=(
                        geometries[k + 1]
                        if k + 1 < len(block)
                        else _filler(config, city, target_id, 1)
                    ),
                    short_form=tuple(bool(v) for v in short[image : image + n]),
                    alignment_line=tuple(bool(v) for v in alignment[image : image + n]),
                )
            )
            target_id, image = target_id + 1, image + n
    return plans
