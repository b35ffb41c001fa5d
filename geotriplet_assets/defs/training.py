"""The triplet-loss projection head, and the Optuna search that can tune it."""

import dataclasses
import json

import dagster as dg
import pandas as pd

from geotriplet_assets.config import GeoTripletConfig
from geotriplet_assets.defs.geography import dataset_splits, geo_neighbours, targets
from geotriplet_assets.defs.metadata import figure_markdown, preview_table
from geotriplet_assets.defs.plots import training_curves
from geotriplet_assets.defs.progress import StepLog
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.defs.slurm import run_step_on_slurm, run_trials_on_slurm
from geotriplet_assets.paths import ArtefactLayout, atomic_path
from geotriplet_assets.stage_settings import (
    params_from_config,
    settings_from_config,
    study_settings,
    study_storage_url,
)
from geotriplet_assets.training.optuna_search import (
    open_study,
    optimize,
    params_with,
    redacted_url,
    study_result,
)
from geotriplet_assets.training.params import HeadParams
from geotriplet_assets.training.run_inputs import (
    record_inputs,
    same_inputs_as_before,
    training_inputs_fingerprint,
)
from geotriplet_assets.training.split_data import TrainingData, load_training_data
from geotriplet_assets.training.trainer import TrainingResult, train_projection_head

TRAINING_UPSTREAM = [targets, dataset_splits, geo_neighbours]


def training_data_for(config: GeoTripletConfig, layout: ArtefactLayout) -> TrainingData:
    return load_training_data(layout, config.model.backbone)


@dg.asset(
    deps=TRAINING_UPSTREAM,
    group_name="training",
    kinds={"optuna", "pytorch", "lightning"},
    description=(
        "Optuna study over the head's hyperparameters (learning rate, weight decay, embedding "
        "size, margin, difficulty levels, UCB alpha, batch size, warmup), maximising "
        "validation recall@1 with per-epoch median pruning; persistent storage (SQLite under "
        "the data root unless optuna.storage names another SQLAlchemy URL). With "
        "compute.mode slurm the trials run in parallel SLURM jobs sharing that storage. Its "
        "best parameters are used by projection_head when optuna.enabled is true; when it is "
        "false the asset records that no search ran."
    ),
)
def hyperparameter_search(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config = settings.config
    if not config.optuna.enabled:
        context.log.info("optuna.enabled is false: no search; the head uses the config's values")
        return dg.MaterializeResult(
            metadata={
                "enabled": False,
                "note": "search disabled (optuna.enabled: false); projection_head trains "
                "with the configured parameters",
            }
        )
    layout = settings.layout
    storage = study_storage_url(config)
    study = open_study(storage, config.optuna.study_name, config.train.seed)
    jobs: dict[str, object] = {}
    if config.compute.mode == "slurm":
        jobs = run_trials_on_slurm(
            context, config, settings.config_path, config.optuna.n_trials, storage
        )
    else:
        run_trials(config, layout, config.optuna.n_trials)
    result = study_result(study, storage)
    path = layout.best_params_path
    with atomic_path(path) as temporary:
        temporary.write_text(
            json.dumps(
                {
                    "study_name": result.study_name,
                    "storage": result.storage,
                    "best_value": result.best_value,
                    "best_params": result.best_params,
                },
                indent=2,
            )
        )
    states = result.trials["state"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "enabled": True,
            "path": dg.MetadataValue.path(str(path)),
            "storage": redacted_url(result.storage),
            "study_name": result.study_name,
            "trials": len(result.trials),
            "completed_trials": int(states.get("COMPLETE", 0)),
            "pruned_trials": int(states.get("PRUNED", 0)),
            "best_val_recall_at_1": result.best_value,
            "best_params": dg.MetadataValue.json(result.best_params),
            "trials_table": preview_table(result.trials, rows=50),
            **jobs,
        }
    )


def run_trials(
    config: GeoTripletConfig, layout: ArtefactLayout, n_trials: int, worker: int = 0
) -> None:
    """N_TRIALS more trials of the configured study, in this process: the search's work in a
    local step and in each of its SLURM trial workers, which share the study's storage and
    seed their samplers apart (train.seed + WORKER) so that they do not propose alike."""
    optimize(
        open_study(
            study_storage_url(config), config.optuna.study_name, config.train.seed + worker
        ),
        training_data_for(config, layout),
        params_from_config(config),
        study_settings(config, layout.root),
        n_trials=n_trials,
        timeout_s=config.optuna.timeout_s,
        output_dir=layout.optuna_dir / config.optuna.study_name,
    )


def head_params(config: GeoTripletConfig, layout: ArtefactLayout) -> tuple[HeadParams, str]:
    """The config's parameters, or the study's best ones when the search is enabled and ran."""
    params = params_from_config(config)
    path = layout.best_params_path
    if config.optuna.enabled and path.is_file():
        best = json.loads(path.read_text())["best_params"]
        return params_with(params, best), f"optuna study {config.optuna.study_name}"
    return params, "configuration"


@dg.asset(
    deps=[*TRAINING_UPSTREAM, hyperparameter_search],
    group_name="training",
    kinds={"pytorch", "lightning", "wandb"},
    description=(
        "Triplet-loss projection head over the frozen backbone embeddings (PyTorch "
        "Lightning), negatives from geographic distance bands chosen by a UCB bandit; "
        "checkpointed and early-stopped on validation recall@1; evaluated on val and test "
        "beside the raw backbone. Tracked in Weights & Biases (offline unless configured)."
    ),
)
def projection_head(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config = settings.config
    if config.compute.mode == "slurm":
        return run_step_on_slurm(context, config, settings.config_path, "projection_head")
    return dg.MaterializeResult(metadata=train_head(config, settings.layout, context.log))


def train_head(
    config: GeoTripletConfig, layout: ArtefactLayout, log: StepLog
) -> dict[str, object]:
    """Train (or resume) the head; its materialisation metadata. The step's work wherever it
    runs: the Dagster step's process, or a SLURM job (defs.slurm_job)."""
    data = training_data_for(config, layout)
    params, params_source = head_params(config, layout)
    run_settings = settings_from_config(config, layout.root)
    output_dir = layout.root / config.logging.checkpoint_dir
    fingerprint = training_inputs_fingerprint(data, params, run_settings)
    resume = same_inputs_as_before(output_dir, fingerprint)
    log.info(
        f"resuming from {output_dir}"
        if resume
        else f"inputs changed: training afresh in {output_dir}"
    )
    record_inputs(output_dir, fingerprint)
    result = train_projection_head(data, params, run_settings, output_dir, resume=resume)
    record_inputs(output_dir, fingerprint, finished=True)
    return {
        "data_source": data.source,
        "params_source": params_source,
        "params": dg.MetadataValue.json(dataclasses.asdict(params)),
        "resumed": resume,
        **_training_metadata(result),
    }


def _training_metadata(result: TrainingResult) -> dict[str, object]:
    metrics = {
        "head_test": result.head_test.as_dict(),
        "backbone_test": result.backbone_test.as_dict(),
        "head_val": result.head_val.as_dict(),
        "backbone_val": result.backbone_val.as_dict(),
    }
    comparison = pd.DataFrame([{"model": name, **values} for name, values in metrics.items()])
    history = pd.DataFrame(result.history)
    bandit = pd.DataFrame(result.bandit_summary)
    bandit.insert(0, "band", range(len(bandit)))
    return {
        "head_path": dg.MetadataValue.path(str(result.head_path)),
        "best_checkpoint": dg.MetadataValue.path(str(result.best_checkpoint)),
        "test_recall_at_1": result.head_test.recall_at[1],
        "backbone_test_recall_at_1": result.backbone_test.recall_at[1],
        "test_recall_at_1_gain_points": 100
        * (result.head_test.recall_at[1] - result.backbone_test.recall_at[1]),
        "test_recall_at_1_ci95": dg.MetadataValue.json(
            list(result.head_test.intervals.get("recall@1", ()))
        ),
        "test_queries": result.head_test.queries,
        "test_eligible_queries": result.head_test.eligible,
        **{
            f"test_recall_at_{k}_{result.head_test.recall_radius_m:g}m": value
            for k, value in result.head_test.recall_at_radius.items()
            if k == 1
        },
        "test_map_at_r": result.head_test.map_at_r,
        "test_median_error_m": result.head_test.median_error_m,
        "test_within_25m": result.head_test.top1.within[25.0],
        "test_locate_median_error_m": result.head_test.locate.median_m,
        "test_locate_within_25m": result.head_test.locate.within[25.0],
        "best_val_recall_at_1": result.best_val_recall_at_1,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "batch_size": result.batch_size,
        "seconds": round(result.seconds, 1),
        "seconds_to_best": round(result.seconds_to_best, 1),
        "metrics": preview_table(comparison, rows=4),
        "bandit": preview_table(bandit, rows=len(bandit)),
        "training_curve": figure_markdown(training_curves(history), "training curve"),
    }
