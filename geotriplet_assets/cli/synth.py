"""`geotriplet synth`: generate the synthetic demo city in the real dataset's file format."""

from __future__ import annotations

import argparse
from pathlib import Path

from geotriplet_assets.cli.console import console, progress_display
from geotriplet_assets.config import GeoTripletConfig
from geotriplet_assets.synth import SynthConfig, generate_city
from geotriplet_assets.synth.scale_city import MAX_SCALE_IMAGES, generate_scale_city


def run(config: GeoTripletConfig, args: argparse.Namespace) -> int:
    out_dir = Path(args.out).resolve() if args.out else config.input_dir
    preset = args.preset or config.synth.preset
    seed = config.synth.seed if args.seed is None else args.seed
    if (preset == "scale") != (args.images is not None):
        console.print("[red]--images goes with --preset scale, and --preset scale needs it[/red]")
        return 2
    if preset == "scale" and not 1 <= args.images <= MAX_SCALE_IMAGES:
        console.print(
            f"[red]--images must be between 1 and {MAX_SCALE_IMAGES:,}, got {args.images}[/red]"
        )
        return 2
    with progress_display() as progress:
        task = progress.add_task(f"generating {preset} city", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if preset == "scale":
            summary = generate_scale_city(
                out_dir, args.images, seed=seed, workers=args.workers, progress=on_progress
            )
        else:
            summary = generate_city(
                out_dir,
                SynthConfig.preset(preset, seed=seed),
                progress=on_progress,
                workers=args.workers,
            )
    console.print(
        f"[green]{preset} city:[/green] {summary.images} images: {summary.targets} targets seen "
        f"several times and {summary.distractors} single-view distractors "
        f"in {summary.cities} cities "
        f"-> {out_dir} ({summary.seconds:.1f} s)"
    )
    return 0
