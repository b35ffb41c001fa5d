"""A synthetic dataset of any size, cheap per image, for scale runs.

The demo city renders every facade in perspective (30 to 250 images/s); a million images
that way would take hours. This generator keeps the real data's format and shape: the
long 17-number `d` line, 2 to 7 views per building, single-view distractors, one DatasetID
per region and buildings along the streets of a city grid. Each photo is a small JPEG: the
building's own seeded pattern of coloured panels, shifted, scaled in brightness and noised
per view, so views of one building resemble each other more than their neighbours'. It is
for timing and memory, not for retrieval quality.

Regions are the demo's cities (DatasetIDs 1..8). Each is a square grid of 100 m blocks with
a facade every 15 m on each side (24 per block, jittered by up to 2 m); files go into
`<DatasetID>/<TargetID // 1000>/` folders.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from geotriplet_assets.synth.cities import DEFAULT_CITIES, CitySpec
from geotriplet_assets.synth.generator import MANIFEST_FORMAT, MANIFEST_VERSION, SynthSummary
from geotriplet_assets.synth.metadata_writer import ImageRecord, image_stem, long_form_text
from geotriplet_assets.synth.output_dir import prepare_output_dir, write_manifest

BLOCK_M = 100.0
FACADE_SPACING_M = 15.0
FACADES_PER_SIDE = int(BLOCK_M // FACADE_SPACING_M) - 2  # corners left free
SCALE_IMAGE_SIZE = 48
MIN_VIEWS, MAX_VIEWS = 2, 7
DISTRACTOR_FRACTION = 0.1
TARGETS_PER_TASK = 2_000
MAX_SCALE_IMAGES = 50_000_000
_PANELS = 6
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class _Task:
    out_dir: Path
    city: CitySpec
    seed: int
    first_target: int  # 1-based TargetID
    count: int
    grid_blocks: int
    image_size: int


def _views(seed: int, city: CitySpec, n_targets: int) -> np.ndarray:
    """Views of the first N_TARGETS targets of a region: 1 for distractors, else 2..7. Two
    separate streams, so a prefix is the same whatever N_TARGETS."""
    counts = np.random.default_rng([seed, city.dataset_id, 0]).integers(
        MIN_VIEWS, MAX_VIEWS + 1, size=n_targets
    )
    distractor = np.random.default_rng([seed, city.dataset_id, 1]).random(n_targets)
    return np.where(distractor < DISTRACTOR_FRACTION, 1, counts)


def plan_regions(images: int, regions: int, seed: int) -> list[tuple[CitySpec, int, int]]:
    """(region, targets, grid blocks per side): the fewest targets whose views reach
    IMAGES / REGIONS in every region."""
    per_region = math.ceil(images / regions)
    expected_views = (1 - DISTRACTOR_FRACTION) * (MIN_VIEWS + MAX_VIEWS) / 2 + DISTRACTOR_FRACTION
    plans = []
    for city in DEFAULT_CITIES[:regions]:
        views = _views(seed, city, math.ceil(per_region / expected_views * 1.2) + 10)
        n_targets = int(np.searchsorted(np.cumsum(views), per_region) + 1)
        blocks = math.ceil(math.sqrt(n_targets / (4 * FACADES_PER_SIDE)))
        plans.append((city, n_targets, blocks))
    return plans


def _facade(target_index: int, grid_blocks: int) -> tuple[float, float, float]:
    """East and north (m from the region's centre) and outward normal azimuth of a facade."""
    block, slot = divmod(target_index, 4 * FACADES_PER_SIDE)
    side, position = divmod(slot, FACADES_PER_SIDE)
    bx, by = divmod(block, grid_blocks)
    x0 = (bx - grid_blocks / 2) * BLOCK_M
    y0 = (by - grid_blocks / 2) * BLOCK_M
    along = (position + 1.5) * FACADE_SPACING_M
    inset = 10.0  # from the street's centre line to the facade
    if side == 0:  # south side, facing south
        return x0 + along, y0 + inset, 180.0
    if side == 1:  # east side, facing east
        return x0 + BLOCK_M - inset, y0 + along, 90.0
    if side == 2:  # north side, facing north
        return x0 + BLOCK_M - along, y0 + BLOCK_M - inset, 0.0
    return x0 + inset, y0 + BLOCK_M - along, 270.0


def _pattern(rng: np.random.Generator, size: int) -> np.ndarray:
    panels = rng.integers(30, 226, size=(_PANELS, _PANELS, 3)).astype(np.float32)
    cell = math.ceil(size / _PANELS)
    return np.kron(panels, np.ones((cell, cell, 1), np.float32))[:size, :size]


def _view_image(base: np.ndarray, rng: np.random.Generator) -> bytes:
    shifted = np.roll(base, tuple(rng.integers(-3, 4, size=2)), axis=(0, 1))
    pixels = shifted * rng.uniform(0.75, 1.25) + rng.normal(0, 8, size=base.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _write_targets(task: _Task) -> int:
    city = task.city
    views = _views(task.seed, city, task.first_target + task.count - 1)
    written = 0
    for target_id in range(task.first_target, task.first_target + task.count):
        rng = np.random.default_rng([task.seed, city.dataset_id, target_id, 1])
        east, north, normal_deg = _facade(target_id - 1, task.grid_blocks)
        east, north = east + rng.uniform(-2, 2), north + rng.uniform(-2, 2)
        target_lat, target_lon = city.to_latlon(east, north)
        height = float(rng.uniform(4.0, 20.0))
        normal = math.radians(normal_deg)
        patch_id = int(rng.integers(1, 10_000_000))
        base = _pattern(rng, task.image_size)
        folder = task.out_dir / f"{city.dataset_id:04d}" / f"{target_id // 1000:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for view in range(int(views[target_id - 1])):
            distance = float(rng.uniform(8.0, 30.0))
            offset = math.radians(float(rng.uniform(-35.0, 35.0)))
            cam_east = east + distance * math.sin(normal + offset)
            cam_north = north + distance * math.cos(normal + offset)
            sv_lat, sv_lon = city.to_latlon(cam_east, cam_north)
            heading = (math.degrees(math.atan2(east - cam_east, north - cam_north))) % 360.0
            record = ImageRecord(
                dataset_id=city.dataset_id,
                target_id=target_id,
                patch_id=patch_id,
                street_view_id=target_id * 8 + view,
                target_lat=target_lat,
                target_lon=target_lon,
                target_height=city.elevation_m + height,
                normal=(math.sin(normal), math.cos(normal), 0.0),
                sv_lat=sv_lat,
                sv_lon=sv_lon,
                sv_height=city.elevation_m + 2.5,
                distance=distance,
                heading=heading,
                pitch=math.degrees(math.atan2(height - 2.5, distance)),
            )
            stem = image_stem(record, view)
            (folder / f"{stem}.jpg").write_bytes(_view_image(base, rng))
            (folder / f"{stem}.txt").write_text(long_form_text(record))
            written += 1
    return written


def _tasks(out_dir: Path, images: int, regions: int, seed: int, size: int) -> list[_Task]:
    tasks = []
    for city, n_targets, blocks in plan_regions(images, regions, seed):
        for first in range(1, n_targets + 1, TARGETS_PER_TASK):
            count = min(TARGETS_PER_TASK, n_targets - first + 1)
            tasks.append(_Task(out_dir, city, seed, first, count, blocks, size))
    return tasks


def _run(tasks: list[_Task], workers: int) -> Iterator[int]:
    if workers == 1:
        yield from map(_write_targets, tasks)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(_write_targets, tasks)


def generate_scale_city(
    out_dir: Path,
    images: int,
    *,
    seed: int = 7,
    regions: int = len(DEFAULT_CITIES),
    image_size: int = SCALE_IMAGE_SIZE,
    workers: int = 1,
    progress: ProgressCallback | None = None,
) -> SynthSummary:
    """Write about IMAGES photos (each region's count rounded up to whole buildings) into
    OUT_DIR (empty, new, or a previous synth output). Deterministic for a seed, whatever the
    number of WORKERS (spawned processes: guard a script's entry point)."""
    if not 1 <= images <= MAX_SCALE_IMAGES:
        raise ValueError(f"images must be in [1, {MAX_SCALE_IMAGES}], got {images}")
    if not 1 <= regions <= len(DEFAULT_CITIES):
        raise ValueError(f"regions must be in [1, {len(DEFAULT_CITIES)}], got {regions}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    prepare_output_dir(out_dir)
    plans = plan_regions(images, regions, seed)
    tasks = _tasks(out_dir, images, regions, seed, image_size)
    total = sum(int(_views(seed, city, n).sum()) for city, n, _ in plans)
    done = 0
    for count in _run(tasks, workers):
        done += count
        if progress is not None:
            progress(done, total)
    targets = distractors = 0
    for city, n_targets, _ in plans:
        views = _views(seed, city, n_targets)
        distractors += int((views == 1).sum())
        targets += int((views > 1).sum())
    write_manifest(
        out_dir,
        {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "config": {
                "preset": "scale",
                "images": images,
                "seed": seed,
                "image_size": image_size,
            },
            "images": done,
            "targets": targets,
            "distractors": distractors,
            "cities": [
                {"name": city.name, "dataset_id": city.dataset_id, "grid_blocks": blocks}
                for city, _, blocks in plans
            ],
        },
    )
    return SynthSummary(
        images=done,
        targets=targets,
        distractors=distractors,
        cities=regions,
        out_dir=out_dir,
        seconds=time.perf_counter() - started,
    )
