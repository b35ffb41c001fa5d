"""Weights & Biases tracking: offline by default (no account, no network), online on request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import wandb
from lightning.pytorch.loggers import WandbLogger

from geotriplet_assets.training.params import TrackingSettings


def wandb_settings(settings: TrackingSettings) -> wandb.Settings:
    """Quiet settings that collect nothing beyond what is logged explicitly."""
    return wandb.Settings(
        mode="offline" if settings.offline else "online",
        silent=True,
        console="off",
        disable_git=True,
        disable_code=True,
        save_code=False,
        x_disable_stats=True,
    )


def make_wandb_logger(
    settings: TrackingSettings, config: Mapping[str, Any] | None = None
) -> WandbLogger:
    """A Lightning WandbLogger writing under settings.save_dir; CONFIG is the run config.

    Checkpoints are recorded by `record_checkpoint` (Lightning refuses log_model offline).
    """
    save_dir = Path(settings.save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    return WandbLogger(
        name=settings.experiment_name,
        project=settings.project,
        save_dir=str(save_dir),
        offline=settings.offline,
        log_model=False,
        group=settings.group,
        config=dict(config or {}),
        settings=wandb_settings(settings),
    )


def record_checkpoint(
    logger: WandbLogger, files: Iterable[Path], *, summary: Mapping[str, Any]
) -> None:
    """Store SUMMARY in the run summary and FILES as a model artifact (staged when offline)."""
    run = logger.experiment
    run.summary.update(dict(summary))
    artifact = wandb.Artifact(name=f"head-{run.id}", type="model")
    for path in files:
        artifact.add_file(str(path), name=Path(path).name)
    run.log_artifact(artifact, aliases=["best"])


def finish_run(logger: WandbLogger, exit_code: int = 0) -> None:
    """Close the run and wait until its files are complete; harmless if it never started.

    run.finish() returns before the W&B service has flushed the offline run log;
    wandb.teardown() waits for the service, so the directory can be read or synced next.
    """
    run = getattr(logger, "_experiment", None)
    if run is not None:
        run.finish(exit_code=exit_code)
        wandb.teardown()
