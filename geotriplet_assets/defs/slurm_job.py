"""The job end of defs.slurm: one step's work in a SLURM job, reporting to Dagster through Pipes.

    python -m geotriplet_assets.defs.slurm_job backbone_embeddings | projection_head
    python -m geotriplet_assets.defs.slurm_job trials --trials N --worker I

defs.slurm writes the batch script that runs this with the Pipes bootstrap variables and the
GeoTriplet environment (config, data root, caches) of the Dagster process. The work is the same
function the local step runs; its metadata goes back as one Pipes custom message.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from dagster_pipes import open_dagster_pipes

from geotriplet_assets.config import OPTUNA_STORAGE_ENV_VAR, load_config
from geotriplet_assets.defs.features import embed_partition
from geotriplet_assets.defs.metadata import serialized_metadata
from geotriplet_assets.defs.slurm import STORAGE_REQUIRED_ENV_VAR
from geotriplet_assets.defs.training import run_trials, train_head
from geotriplet_assets.paths import ArtefactLayout

STEPS = ("backbone_embeddings", "projection_head", "trials")


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m geotriplet_assets.defs.slurm_job")
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--trials", type=int, default=1, help="trials this worker runs")
    parser.add_argument("--worker", type=int, default=0, help="this trial worker's number")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    arguments = _arguments(argv)
    with open_dagster_pipes() as pipes:
        config = load_config()
        layout = ArtefactLayout(config.data_root)
        metadata: dict[str, object] = {}
        if arguments.step == "backbone_embeddings":
            metadata = embed_partition(config, layout, pipes.partition_key, pipes.log)
        elif arguments.step == "projection_head":
            metadata = train_head(config, layout, pipes.log)
        else:
            if os.environ.get(STORAGE_REQUIRED_ENV_VAR) and not os.environ.get(
                OPTUNA_STORAGE_ENV_VAR
            ):
                raise RuntimeError(
                    f"${OPTUNA_STORAGE_ENV_VAR} was set where Dagster submitted this job but did "
                    "not reach it (sbatch exported less than the environment: set "
                    "SBATCH_EXPORT=ALL there); without it this worker would use another study"
                )
            pipes.log.info(f"trial worker {arguments.worker}: {arguments.trials} trials")
            run_trials(config, layout, arguments.trials, worker=arguments.worker)
        pipes.report_custom_message(serialized_metadata(metadata))


if __name__ == "__main__":
    main()
