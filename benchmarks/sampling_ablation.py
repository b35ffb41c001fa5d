"""Sampling ablation: how negatives are chosen, each strategy trained with several seeds on
each city, mean ± standard deviation of the test figures.

The runs of one city share the parameters and the budget (epochs, samples per epoch, early
stopping on val recall@1); only the strategy and the seed differ (the seed drives the head's
initialisation, the sampler and the bandit's ties). Strategies (training.params.SAMPLING_MODES):
UCB over distance bands rewarded by the normalised loss (the original project's), the same with
in-batch semi-hard negatives added to its triplets (the default), UCB rewarded
by the semi-hard indicator, uniform bands, uniformly random negatives, and random triplets
re-mined in the batch by pytorch-metric-learning's BatchEasyHardMiner (easy positives,
semi-hard negatives).

Usage: python benchmarks/sampling_ablation.py [--data-root data ...] [--seeds 3]
       [--modes ucb,random,...]
Each data root must hold a materialised city (`make demo`; a second one with
`geotriplet synth --preset large --seed 11` and `geotriplet materialize`, docs/training.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from geotriplet_assets.config import load_config
from geotriplet_assets.paths import ArtefactLayout
from geotriplet_assets.stage_settings import params_from_config, settings_from_config
from geotriplet_assets.training.params import SAMPLING_MODES
from geotriplet_assets.training.split_data import load_training_data
from geotriplet_assets.training.trainer import train_projection_head

FIGURES = ("recall@1", "recall@1 25 m", "mAP@R")


def run_city(data_root: Path, modes: list[str], seeds: int) -> dict[str, np.ndarray]:
    """Per mode, a (seeds, 3) array of test recall@1, recall@1 at 25 m and mAP@R."""
    os.environ["GEOTRIPLET_DATA_ROOT"] = str(data_root)
    config = load_config(None)
    layout = ArtefactLayout(data_root)
    if not layout.neighbours_path.is_file():
        raise SystemExit(f"no materialised city under {data_root}: run `make demo` first")
    data = load_training_data(layout, config.model.backbone)
    params = params_from_config(config)
    base = settings_from_config(config, data_root)
    base = replace(base, tracking=replace(base.tracking, enabled=False))
    print(
        f"\n{data_root}: {len(data.train.image_ids)} train / {len(data.test.image_ids)} test "
        f"images; {base.max_epochs} epochs max x {base.samples_per_epoch} triplets, early "
        f"stopping on val recall@1 (patience {base.early_stopping_patience})",
        flush=True,
    )
    results: dict[str, list[list[float]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(base.seed, base.seed + seeds):
            for mode in modes:
                started = time.perf_counter()
                result = train_projection_head(
                    data,
                    params,
                    replace(base, sampling=mode, seed=seed),
                    Path(scratch) / f"{mode}-{seed}",
                    resume=False,
                )
                test = result.head_test
                figures = [test.recall_at[1], test.recall_at_radius[1], test.map_at_r]
                results[mode].append(figures)
                print(
                    f"  seed {seed} {mode:<14} "
                    + "  ".join(
                        f"{name} {value:.3f}" for name, value in zip(FIGURES, figures, strict=True)
                    )
                    + f"  best epoch {result.best_epoch}  {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
    return {mode: np.asarray(values) for mode, values in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, action="append", default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(SAMPLING_MODES))
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(SAMPLING_MODES))
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; one of {list(SAMPLING_MODES)}")
    roots = [root.resolve() for root in (args.data_root or [Path("data")])]
    tables = {root: run_city(root, modes, args.seeds) for root in roots}
    for root, table in tables.items():
        print(f"\n{root}: test figures, mean ± sd over {args.seeds} seeds")
        print("| negatives | " + " | ".join(FIGURES) + " |")
        print("|---|" + "---|" * len(FIGURES))
        for mode, values in table.items():
            cells = [
                f"{values[:, i].mean():.3f} ± {values[:, i].std(ddof=1):.3f}"
                for i in range(len(FIGURES))
            ]
            print(f"| {mode} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
