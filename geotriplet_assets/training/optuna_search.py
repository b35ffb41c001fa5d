"""Hyperparameter search with Optuna: maximise validation recall@1, prune per epoch.

The margin is searched in [0.05, 1.0], not the original 0.1..2.0: the loss uses
cosine distance between unit vectors, and a margin near or above 1 asks the
negative to be nearly orthogonal-to-opposite while the positive coincides,
which is never satisfied, so every triplet stays active and the bandit's
rewards saturate at 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import lightning as L
import optuna
import pandas as pd
from lightning.pytorch.callbacks import Callback

from geotriplet_assets.training.lightning_module import VAL_RECALL_AT_1
from geotriplet_assets.training.params import HeadParams, TrainingSettings
from geotriplet_assets.training.split_data import TrainingData
from geotriplet_assets.training.trainer import train_projection_head

EMBEDDING_SIZES = (64, 128, 256, 512)
BATCH_SIZES = (64, 128, 256, 512)
MARGIN_RANGE = (0.05, 1.0)
PRUNER_STARTUP_TRIALS = 2
PRUNER_WARMUP_EPOCHS = 1


@dataclass(frozen=True)
class StudyResult:
    best_params: dict[str, Any]
    best_value: float
    trials: pd.DataFrame
    storage: str
    study_name: str

    def head_params(self, base: HeadParams) -> HeadParams:
        """BASE with the best trial's values: what the head asset trains with."""
        return params_with(base, self.best_params)


def params_with(base: HeadParams, values: dict[str, Any]) -> HeadParams:
    """BASE with the HeadParams fields named in VALUES replaced; other keys are ignored."""
    names = {f.name for f in fields(HeadParams)}
    return replace(base, **{k: v for k, v in values.items() if k in names})


def suggest_params(trial: optuna.Trial, base: HeadParams) -> HeadParams:
    """The search space; hidden size and dropout stay as in BASE."""
    return replace(
        base,
        lr=trial.suggest_float("lr", 1e-5, 1e-2, log=True),
        weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        embedding_size=trial.suggest_categorical("embedding_size", EMBEDDING_SIZES),
        margin=trial.suggest_float("margin", *MARGIN_RANGE),
        num_difficulty_levels=trial.suggest_int("num_difficulty_levels", 3, 10),
        ucb_alpha=trial.suggest_float("ucb_alpha", 0.5, 5.0),
        batch_size=trial.suggest_categorical("batch_size", BATCH_SIZES),
        warmup_epochs=trial.suggest_int("warmup_epochs", 0, 3),
    )


class PruneOnValidationRecall(Callback):
    """Reports val/recall@1 after every validation and prunes a trial the pruner rejects."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or VAL_RECALL_AT_1 not in trainer.callback_metrics:
            return
        epoch = int(trainer.current_epoch)
        self.trial.report(float(trainer.callback_metrics[VAL_RECALL_AT_1]), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {epoch}")


def _trial_settings(settings: TrainingSettings, study_name: str, number: int) -> TrainingSettings:
    tracking = replace(
        settings.tracking,
        experiment_name=f"{study_name}-trial-{number:04d}",
        group=settings.tracking.group or study_name,
    )
    return replace(settings, tracking=tracking)


def redacted_url(url: str) -> str:
    """A storage URL fit for logs and metadata: whatever stands between the user's name and
    the host's last "@" (the password, even one with an unescaped "@") becomes ***."""
    return re.sub(r"(://[^:/@]*:).*@", r"\1***@", url)


def open_study(storage: str, study_name: str, seed: int) -> optuna.Study:
    """The persistent study STUDY_NAME in STORAGE, created on first use. Workers that share a
    server storage (parallel SLURM jobs) each open it; the median pruner compares a trial with
    every worker's trials."""
    return optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS
        ),
    )


def optimize(
    study: optuna.Study,
    data: TrainingData,
    base_params: HeadParams,
    settings: TrainingSettings,
    *,
    n_trials: int,
    timeout_s: float | None,
    output_dir: Path,
) -> None:
    """Run N_TRIALS more trials of STUDY (or until TIMEOUT_S); each trains afresh in
    OUTPUT_DIR/trial-NNNN with its own W&B run."""
    study_name = study.study_name

    def objective(trial: optuna.Trial) -> float:
        params = suggest_params(trial, base_params)
        result = train_projection_head(
            data,
            params,
            _trial_settings(settings, study_name, trial.number),
            output_dir / f"trial-{trial.number:04d}",
            extra_callbacks=[PruneOnValidationRecall(trial)],
            resume=False,
        )
        trial.set_user_attr("head_path", str(result.head_path))
        trial.set_user_attr("epochs_run", result.epochs_run)
        return result.best_val_recall_at_1

    study.optimize(objective, n_trials=n_trials, timeout=timeout_s, gc_after_trial=True)


def study_result(study: optuna.Study, storage: str) -> StudyResult:
    """The best trial so far and every trial's state, value and parameters."""
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        raise optuna.exceptions.OptunaError(
            f"study {study.study_name!r} in {redacted_url(storage)} has no completed trial yet"
        )
    return StudyResult(
        best_params=dict(study.best_params),
        best_value=float(study.best_value),
        trials=study.trials_dataframe(attrs=("number", "state", "value", "params")),
        storage=storage,
        study_name=study.study_name,
    )


def run_study(
    data: TrainingData,
    base_params: HeadParams,
    settings: TrainingSettings,
    *,
    storage: str,
    study_name: str,
    n_trials: int,
    timeout_s: float | None,
    output_dir: Path,
    seed: int,
) -> StudyResult:
    """Run N_TRIALS more trials (or until TIMEOUT_S) of a persistent, resumable study in this
    process, and return its result."""
    study = open_study(storage, study_name, seed)
    optimize(
        study,
        data,
        base_params,
        settings,
        n_trials=n_trials,
        timeout_s=timeout_s,
        output_dir=output_dir,
    )
    return study_result(study, storage)
