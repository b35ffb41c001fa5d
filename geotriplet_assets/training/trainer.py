"""Train the projection head: from training data to the best checkpoint, head and metrics."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.data import AttributeDict
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.tuner import Tuner

from geotriplet_assets.evaluation.retrieval_metrics import RetrievalMetrics
from geotriplet_assets.paths import atomic_path
from geotriplet_assets.training.head_file import HEAD_FILE, embed_array, save_head
from geotriplet_assets.training.lightning_module import (
    VAL_RECALL_AT_1,
    TripletHeadModule,
    evaluate_split,
)
from geotriplet_assets.training.params import HeadParams, TrainingSettings
from geotriplet_assets.training.projection_head import ProjectionHead
from geotriplet_assets.training.split_data import TrainingData
from geotriplet_assets.training.tracking import (
    finish_run,
    make_wandb_logger,
    record_checkpoint,
)
from geotriplet_assets.training.triplet_stream import TripletDataModule

LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT_PATTERN = "best-epoch{epoch:03d}"
METRICS_FILE = "metrics.json"
OUTPUT_FILES = (HEAD_FILE, "head.json", METRICS_FILE)
GRADIENT_CLIP = 1.0
# The same for every run: clipped gradients, no sanity pass, no console output of Lightning's.
QUIET_TRAINER = {
    "gradient_clip_val": GRADIENT_CLIP,
    "num_sanity_val_steps": 0,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}
AUTO_BATCH_STEPS_PER_TRIAL = 3


class UnsafeCheckpointWarning(UserWarning):
    """A checkpoint that is not plain data (or is damaged) was found and not resumed from."""


class TrainingError(RuntimeError):
    """Training that cannot start or produced no usable checkpoint."""


@dataclass(frozen=True)
class TrainingResult:
    best_checkpoint: Path
    last_checkpoint: Path
    head_path: Path
    metrics_path: Path
    best_val_recall_at_1: float
    best_epoch: int
    epochs_run: int
    seconds: float
    seconds_to_best: float
    batch_size: int
    history: list[dict[str, Any]]
    bandit_summary: dict[str, list[float]]
    head_val: RetrievalMetrics
    head_test: RetrievalMetrics
    backbone_val: RetrievalMetrics
    backbone_test: RetrievalMetrics

    @property
    def files(self) -> list[Path]:
        """What the run leaves for others: the best checkpoint, the head and its metrics."""
        return [self.best_checkpoint, self.head_path, self.metrics_path]


def _accelerator_and_precision(settings: TrainingSettings) -> tuple[str, str]:
    """Mixed precision only on a GPU; full precision on the CPU."""
    accelerator = settings.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    uses_gpu = accelerator in ("gpu", "cuda")
    precision = settings.precision if uses_gpu else "32-true"
    return accelerator, "32-true" if precision == "32" else precision


@contextmanager
def _safe_checkpoint_loading() -> Iterator[None]:
    """Checkpoints are read with torch's weights-only unpickler, never as arbitrary pickles:
    a file planted in the checkpoint folder cannot run code. Lightning's hyperparameter
    container (a dict with attribute access) is the one class allowed beyond plain data."""
    with torch.serialization.safe_globals([AttributeDict]):
        yield


def _load_checkpoint(path: Path) -> dict[str, Any]:
    with _safe_checkpoint_loading():
        return torch.load(path, map_location="cpu", weights_only=True)


def _checkpoint_to_resume(output_dir: Path) -> Path | None:
    """OUTPUT_DIR/last.ckpt when it can be read as plain data; otherwise None, with a
    warning that says why (training then starts afresh and the file is removed)."""
    path = output_dir / LAST_CHECKPOINT
    if not path.is_file():
        return None
    try:
        _load_checkpoint(path)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError...
        # torch's own message suggests loading the file unsafely; it is not repeated here.
        warnings.warn(
            f"{path} is not a checkpoint that can be read as plain data "
            f"({type(error).__name__}); it is not resumed from, training starts afresh",
            UnsafeCheckpointWarning,
            stacklevel=3,
        )
        return None
    return path


def _head_from_checkpoint(path: Path, module: TripletHeadModule) -> ProjectionHead:
    state = _load_checkpoint(path)["state_dict"]
    head = ProjectionHead.from_spec(module.head.spec)
    head.load_state_dict(
        {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
    )
    return head.eval()


def _json_safe(value: Any) -> Any:
    """Plain JSON: NaN and infinities become null."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(_json_safe(payload), indent=2), encoding="utf-8")


def _run_config(
    data: TrainingData, params: HeadParams, settings: TrainingSettings
) -> dict[str, Any]:
    run_settings = {k: v for k, v in asdict(settings).items() if k != "tracking"}
    return {
        **asdict(params),
        **run_settings,
        "data_source": data.source,
        "model_name": data.model_name,
        "input_dim": data.dim,
        "train_images": len(data.train.image_ids),
        "val_images": len(data.val.image_ids),
        "test_images": len(data.test.image_ids),
    }


def _batch_size_to_use(params: HeadParams, resume_from: Path | None) -> int:
    """A resumed run keeps the batch size it was trained with (possibly found by the tuner)."""
    if resume_from is None:
        return params.batch_size
    stored = _load_checkpoint(resume_from).get("hyper_parameters", {})
    return int(stored.get("batch_size", params.batch_size))


def _fresh_start(output_dir: Path) -> None:
    """Remove an earlier run's checkpoints and outputs, so none can be mistaken for this run's."""
    earlier = [*output_dir.glob("*.ckpt"), *(output_dir / name for name in OUTPUT_FILES)]
    for path in earlier:
        path.unlink(missing_ok=True)


def _scale_batch_size(
    trainer: L.Trainer,
    module: TripletHeadModule,
    datamodule: TripletDataModule,
    settings: TrainingSettings,
) -> None:
    Tuner(trainer).scale_batch_size(
        module,
        datamodule=datamodule,
        mode=settings.auto_batch_size_mode,
        init_val=datamodule.batch_size,
        max_trials=settings.auto_batch_size_max_trials,
        steps_per_trial=AUTO_BATCH_STEPS_PER_TRIAL,
        max_val=max(datamodule.batch_size, settings.samples_per_epoch),
    )


def _best_epoch(history: list[dict[str, Any]]) -> int:
    scores = [entry.get(VAL_RECALL_AT_1, float("nan")) for entry in history]
    if not scores or all(math.isnan(s) for s in scores):
        raise TrainingError("no epoch produced a validation recall@1: is the val split empty?")
    return int(np.nanargmax(scores))


def _fit(
    trainer: L.Trainer,
    module: TripletHeadModule,
    datamodule: TripletDataModule,
    settings: TrainingSettings,
    resume_from: Path | None,
) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*`IterableDataset` has `__len__` defined.*")
        # The output folder is ours: it holds head.pt and metrics.json besides checkpoints.
        warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
        if settings.auto_batch_size and resume_from is None:
            _scale_batch_size(trainer, module, datamodule, settings)
        with _safe_checkpoint_loading():
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)


def _check_trainable(data: TrainingData) -> None:
    if data.train.n_targets < 2:
        raise TrainingError(
            f"the train split has {data.train.n_targets} target(s); triplets need at least 2"
        )
    if len(data.val.image_ids) == 0:
        raise TrainingError("the val split has no image: validation recall@1 cannot be measured")


def _callbacks(
    output_dir: Path, settings: TrainingSettings
) -> tuple[ModelCheckpoint, EarlyStopping]:
    """Checkpoints and early stopping on validation recall@1 (higher is better), not loss."""
    checkpoint = ModelCheckpoint(
        dirpath=output_dir,
        filename=BEST_CHECKPOINT_PATTERN,
        auto_insert_metric_name=False,
        monitor=VAL_RECALL_AT_1,
        mode="max",
        save_top_k=1,
        save_last=True,
    )
    early_stopping = EarlyStopping(
        monitor=VAL_RECALL_AT_1, mode="max", patience=settings.early_stopping_patience
    )
    return checkpoint, early_stopping


@contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tracking_logger(
    data: TrainingData,
    params: HeadParams,
    settings: TrainingSettings,
    accelerator: str,
    precision: str,
) -> WandbLogger | None:
    """The W&B logger of the run (None when tracking is off), its config the run's."""
    if not settings.tracking.enabled:
        return None
    run_config = _run_config(data, params, settings)
    run_config.update(accelerator_used=accelerator, precision_used=precision)
    return make_wandb_logger(settings.tracking, run_config)


def train_projection_head(
    data: TrainingData,
    params: HeadParams,
    settings: TrainingSettings,
    output_dir: Path,
    *,
    extra_callbacks: Sequence[Callback] = (),
    resume: bool = True,
) -> TrainingResult:
    """Train to the best validation recall@1; write checkpoints, head.pt and metrics.json.

    With RESUME and an OUTPUT_DIR/last.ckpt from an earlier run, training continues
    from it (epoch, optimiser, schedule, bandit and sampler); without RESUME the
    earlier run's files are removed first.
    """
    started = time.perf_counter()
    _check_trainable(data)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _checkpoint_to_resume(output_dir) if resume else None
    if resume_from is None:
        _fresh_start(output_dir)

    L.seed_everything(settings.seed, verbose=False)
    module = TripletHeadModule(
        data.train,
        data.val,
        params,
        sampling=settings.sampling,
        difficulty_update_freq=settings.difficulty_update_freq,
        seed=settings.seed,
        evaluation=settings,
    )
    datamodule = TripletDataModule(
        module.draw_triplets, settings.samples_per_epoch, _batch_size_to_use(params, resume_from)
    )
    checkpoint, early_stopping = _callbacks(output_dir, settings)
    accelerator, precision = _accelerator_and_precision(settings)
    logger = _tracking_logger(data, params, settings, accelerator, precision)
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_epochs=settings.max_epochs,
        callbacks=[checkpoint, early_stopping, *extra_callbacks],
        logger=logger if logger is not None else False,
        default_root_dir=output_dir,
        log_every_n_steps=max(1, min(50, datamodule.steps_per_epoch)),
        # in a SLURM job, Lightning would requeue it on a signal: a failed job is retried by
        # Dagster, which submits it again (jobs ask --no-requeue)
        plugins=[SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else None,
        **QUIET_TRAINER,
    )
    exit_code = 1
    try:
        with _torch_threads(settings.num_threads):
            _fit(trainer, module, datamodule, settings, resume_from)
            result = _finish(data, module, datamodule, checkpoint, output_dir, started, settings)
        if logger is not None:
            record_checkpoint(logger, result.files, summary=_summary(result))
        exit_code = 0
        return result
    finally:
        if logger is not None:
            finish_run(logger, exit_code)


def _finish(
    data: TrainingData,
    module: TripletHeadModule,
    datamodule: TripletDataModule,
    checkpoint: ModelCheckpoint,
    output_dir: Path,
    started: float,
    settings: TrainingSettings,
) -> TrainingResult:
    """Evaluate the best checkpoint's head and the raw backbone; write head.pt and metrics."""
    last_path = output_dir / LAST_CHECKPOINT
    best_path = Path(checkpoint.best_model_path) if checkpoint.best_model_path else last_path
    if not best_path.is_file():
        raise TrainingError(f"training wrote no checkpoint in {output_dir}")
    history = module.history
    best_epoch = _best_epoch(history)
    head = _head_from_checkpoint(best_path, module)
    head_val = evaluate_split(embed_array(head, data.val.embeddings), data.val, settings)
    head_test = evaluate_split(embed_array(head, data.test.embeddings), data.test, settings)
    backbone_val = evaluate_split(data.val.embeddings, data.val, settings)
    backbone_test = evaluate_split(data.test.embeddings, data.test, settings)
    head_path = output_dir / HEAD_FILE
    save_head(head, head_path)
    result = TrainingResult(
        best_checkpoint=best_path,
        last_checkpoint=last_path,
        head_path=head_path,
        metrics_path=output_dir / METRICS_FILE,
        best_val_recall_at_1=float(history[best_epoch][VAL_RECALL_AT_1]),
        best_epoch=best_epoch,
        epochs_run=len(history),
        seconds=time.perf_counter() - started,
        seconds_to_best=float(history[best_epoch]["elapsed_s"]),
        batch_size=int(datamodule.batch_size),
        history=history,
        bandit_summary=module.bandit.summary(),
        head_val=head_val,
        head_test=head_test,
        backbone_val=backbone_val,
        backbone_test=backbone_test,
    )
    _write_json(result.metrics_path, _metrics_payload(result, data, module))
    return result


def _summary(result: TrainingResult) -> dict[str, Any]:
    return _json_safe(
        {
            "best_val_recall@1": result.best_val_recall_at_1,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "seconds_to_best": result.seconds_to_best,
            "batch_size": result.batch_size,
            "best_checkpoint": str(result.best_checkpoint),
            **result.head_val.as_dict("head/val/"),
            **result.head_test.as_dict("head/test/"),
            **result.backbone_val.as_dict("backbone/val/"),
            **result.backbone_test.as_dict("backbone/test/"),
            **{f"bandit/{key}": values for key, values in result.bandit_summary.items()},
        }
    )


def _metrics_payload(
    result: TrainingResult, data: TrainingData, module: TripletHeadModule
) -> dict[str, Any]:
    return {
        "best_val_recall@1": result.best_val_recall_at_1,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "seconds": result.seconds,
        "seconds_to_best": result.seconds_to_best,
        "batch_size": result.batch_size,
        "best_checkpoint": result.best_checkpoint.name,
        "params": asdict(module.params),
        "data_source": data.source,
        "model_name": data.model_name,
        "head": {"val": result.head_val.as_dict(), "test": result.head_test.as_dict()},
        "backbone": {
            "val": result.backbone_val.as_dict(),
            "test": result.backbone_test.as_dict(),
        },
        "band_edges_m": module.sampler.band_edges_m.tolist(),
        "bandit": result.bandit_summary,
        "history": result.history,
    }
