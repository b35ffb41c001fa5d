"""Train the projection head on the demo city and compare it with the raw backbone.

Uses the artefacts of `make demo` under --data-root and the head parameters of
the config (the embedded demo config unless --config is given). Prints the
training seconds until the best validation recall@1 (the issue's budget: 120 s on
2 cores), the epochs, and the test recall@1 of the head against the raw backbone
embeddings measured in the same run (the issue's bar: at least 5 points better).

Usage: python benchmarks/bench_training.py [--data-root data] [--config PATH]
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
from geotriplet_assets.training.trainer import TrainingResult, train_projection_head

BUDGET_S = 120.0
REQUIRED_GAIN_POINTS = 5.0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path("data"))
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--wandb", action="store_true", help="also record an offline W&B run")
    return parser.parse_args()


def _report(result: TrainingResult) -> None:
    head = result.head_test.recall_at[1] * 100
    raw = result.backbone_test.recall_at[1] * 100
    gain = head - raw
    print(
        f"epochs run                       {result.epochs_run} (best: epoch {result.best_epoch})"
    )
    print(f"batch size                       {result.batch_size}")
    print(f"seconds to best val recall@1     {result.seconds_to_best:.1f} (budget {BUDGET_S:.0f})")
    print(f"seconds in total (incl. eval)    {result.seconds:.1f}")
    print(
        f"val recall@1   head {result.head_val.recall_at[1] * 100:5.1f}   "
        f"raw backbone {result.backbone_val.recall_at[1] * 100:5.1f}"
    )
    print(f"test recall@1  head {head:5.1f}   raw backbone {raw:5.1f}   gain {gain:+.1f} points")
    print(
        f"test mAP@R     head {result.head_test.map_at_r * 100:5.1f}   "
        f"raw backbone {result.backbone_test.map_at_r * 100:5.1f}"
    )
    print(f"test recall@1 ratio head/raw     {head / raw:.2f}x" if raw else "raw recall@1 is 0")
    within_budget = result.seconds_to_best <= BUDGET_S
    enough_gain = gain >= REQUIRED_GAIN_POINTS
    print(f"budget met: {within_budget}; gain >= {REQUIRED_GAIN_POINTS:.0f} points: {enough_gain}")


def main() -> int:
    args = _arguments()
    data_root = args.data_root.resolve()
    os.environ["GEOTRIPLET_DATA_ROOT"] = str(data_root)
    config = load_config(args.config)
    layout = ArtefactLayout(data_root)
    if not layout.neighbours_path.is_file():
        print(
            f"no demo artefacts under {data_root} ({layout.neighbours_path} is missing).\n"
            "Create them first: `make demo` (or `geotriplet synth && geotriplet materialize`),\n"
            "then run this again with --data-root pointing at that data folder.",
            file=sys.stderr,
        )
        return 2
    data = load_training_data(layout, config.model.backbone)
    params = params_from_config(config)
    settings = settings_from_config(config, data_root)
    settings = replace(
        settings,
        num_threads=args.threads,
        tracking=replace(settings.tracking, enabled=args.wandb, save_dir=data_root / "wandb"),
    )
    print(
        f"demo city: {len(data.train.image_ids)} train / {len(data.val.image_ids)} val / "
        f"{len(data.test.image_ids)} test images, {data.dim}-d {data.model_name} embeddings"
    )
    print(f"params: {params}")
    print(
        f"settings: max_epochs={settings.max_epochs} samples_per_epoch="
        f"{settings.samples_per_epoch} update_freq={settings.difficulty_update_freq}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        output = args.output or Path(scratch) / "head"
        result = train_projection_head(data, params, settings, output, resume=False)
        _report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
