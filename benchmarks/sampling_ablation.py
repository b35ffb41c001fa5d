"""Sampling ablation on the demo city: UCB bands vs uniform bands vs random negatives.

The three runs share the seed, the parameters and the budget (epochs, samples per epoch);
only the way negatives are chosen differs. Prints a markdown table of the test figures
(with the raw backbone for reference), as reported in docs/training.md.

Usage: python benchmarks/sampling_ablation.py [--data-root data] [--config PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from geotriplet_assets.config import load_config
from geotriplet_assets.paths import ArtefactLayout
from geotriplet_assets.stage_settings import params_from_config, settings_from_config
from geotriplet_assets.training.split_data import load_training_data
from geotriplet_assets.training.trainer import train_projection_head

MODES = ("ucb", "uniform_bands", "random")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args()
    data_root = args.data_root.resolve()
    os.environ["GEOTRIPLET_DATA_ROOT"] = str(data_root)
    config = load_config(args.config)
    layout = ArtefactLayout(data_root)
    if not layout.neighbours_path.is_file():
        print(f"no demo artefacts under {data_root}: run `make demo` first", file=sys.stderr)
        return 2
    data = load_training_data(layout, config.model.backbone)
    params = params_from_config(config)
    base = settings_from_config(config, data_root)
    base = replace(base, tracking=replace(base.tracking, enabled=False))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for mode in MODES:
            result = train_projection_head(
                data, params, replace(base, sampling=mode), Path(scratch) / mode, resume=False
            )
            rows.append((mode, result))
    backbone = rows[0][1].backbone_test
    print(
        f"seed {base.seed}, {base.max_epochs} epochs max x {base.samples_per_epoch} triplets, "
        f"early stopping on val recall@1; test split: {len(data.test.image_ids)} images"
    )
    print(
        "| negatives | test recall@1 | recall@5 | recall@10 | mAP@R | median error m "
        "| best epoch |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, metrics, epoch in [
        *((mode, result.head_test, str(result.best_epoch)) for mode, result in rows),
        ("raw backbone (no head)", backbone, "-"),
    ]:
        print(
            f"| {name} | {metrics.recall_at[1]:.3f} | {metrics.recall_at[5]:.3f} | "
            f"{metrics.recall_at[10]:.3f} | {metrics.map_at_r:.3f} | "
            f"{metrics.median_error_m:.0f} | {epoch} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
