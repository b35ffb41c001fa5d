"""Catalogue parse rate: metadata parsed in worker processes against one process.

Generates a scale city (`geotriplet synth --preset scale`: real 17-number `d` lines, one
folder per DatasetID and thousand TargetIDs) unless --city names one, then builds the
catalogue alternately inline (workers=1, the baseline) and with one worker per usable core,
and prints images/s for each and their ratio. The files are in the page cache after the
first round (as on a machine that just received them); the first round is not counted.

    .venv/bin/python benchmarks/bench_catalogue.py [--images 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from geotriplet_assets.catalogue.image_catalog import build_catalog, default_workers
from geotriplet_assets.synth.scale_city import generate_scale_city


def timed(city: Path, workers: int) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    catalog = build_catalog(city, workers=workers)
    return time.perf_counter() - started, catalog.images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--city", type=Path, help="an existing input folder to catalogue")
    args = parser.parse_args()
    workers = default_workers()
    with tempfile.TemporaryDirectory() as scratch:
        city = args.city or Path(scratch) / "city"
        if args.city is None:
            summary = generate_scale_city(city, args.images, workers=workers)
            print(f"generated {summary.images} images in {summary.seconds:.0f} s")
        _, reference = timed(city, 1)  # warms the page cache
        inline, parallel = [], []
        for _ in range(args.rounds):
            seconds, _ = timed(city, 1)
            inline.append(seconds)
            seconds, images = timed(city, workers)
            parallel.append(seconds)
            assert images.equals(reference), "the catalogue depends on the workers"
    count = len(reference)
    one, many = statistics.median(inline), statistics.median(parallel)
    print(f"{count} images, median of {args.rounds} rounds, files in the page cache")
    print(f"  inline (1 process, baseline)  {one:6.1f} s  {count / one:9,.0f} images/s")
    print(f"  {workers} worker processes          {many:6.1f} s  {count / many:9,.0f} images/s")
    print(f"ratio workers/inline: {one / many:.2f}x on {workers} cores")


if __name__ == "__main__":
    main()
