"""Generate a synthetic city: plan every target, render them (optionally in processes), manifest.

Every target draws from its own generator seeded by (seed, DatasetID, TargetID), so the
files do not depend on the number of workers or on the order targets finish in.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from geotriplet_assets.synth.cities import DEFAULT_CITIES
from geotriplet_assets.synth.config import SynthConfig
from geotriplet_assets.synth.layout import TargetPlan, plan_city
from geotriplet_assets.synth.output_dir import prepare_output_dir, write_manifest
from geotriplet_assets.synth.target_writer import write_target

MANIFEST_FORMAT = "geotriplet-synth"
MANIFEST_VERSION = 1
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class SynthSummary:
    """What a generation wrote."""

    images: int
    targets: int
    distractors: int
    cities: int
    out_dir: Path
    seconds: float


def plan_targets(config: SynthConfig) -> list[TargetPlan]:
    """Every target of every city, cities in DatasetID order."""
    return [plan for city in DEFAULT_CITIES[: config.cities] for plan in plan_city(city, config)]


def _write_task(task: tuple[TargetPlan, Path, int]) -> int:
    return write_target(*task)


def _written_counts(
    plans: list[TargetPlan], out_dir: Path, image_size: int, workers: int
) -> Iterator[int]:
    tasks = [(plan, out_dir, image_size) for plan in plans]
    if workers == 1:
        yield from map(_write_task, tasks)
        return
    # Spawned workers do not inherit the caller's threads or open handles.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        yield from pool.imap_unordered(_write_task, tasks, chunksize=4)


def generate_city(
    out_dir: Path,
    config: SynthConfig,
    *,
    progress: ProgressCallback | None = None,
    workers: int = 1,
) -> SynthSummary:
    """Write the synthetic city into out_dir (empty, new, or a previous synth output).

    A previous synth output is overwritten cleanly: its manifest and files are removed
    first, and the manifest is written last, so a folder without one is incomplete.
    progress(images_done, images_total) is called after every target. workers > 1 renders
    in spawned processes, which re-import the caller's main module: guard a script's entry
    point with `if __name__ == "__main__":`. The files do not depend on workers.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    plans = plan_targets(config)
    prepare_output_dir(out_dir)
    total = sum(plan.view_count for plan in plans)
    done = 0
    for count in _written_counts(plans, out_dir, config.image_size, workers):
        done += count
        if progress is not None:
            progress(done, total)
    distractors = sum(plan.is_distractor for plan in plans)
    write_manifest(
        out_dir,
        {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "config": asdict(config),
            "images": done,
            "targets": len(plans) - distractors,
            "distractors": distractors,
            "cities": [
                {"name": city.name, "dataset_id": city.dataset_id}
                for city in DEFAULT_CITIES[: config.cities]
            ],
        },
    )
    return SynthSummary(
        images=done,
        targets=len(plans) - distractors,
        distractors=distractors,
        cities=config.cities,
        out_dir=out_dir,
        seconds=time.perf_counter() - started,
    )
