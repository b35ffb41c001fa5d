from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from geotriplet_assets.evaluation.retrieval_metrics import evaluate_retrieval
from geotriplet_assets.training.head_file import embed_with_head
from geotriplet_assets.training.lightning_module import CheckpointMismatchError
from geotriplet_assets.training.params import HeadParams, TrackingSettings, TrainingSettings
from geotriplet_assets.training.split_data import TrainingData
from geotriplet_assets.training.trainer import (
    TrainingResult,
    UnsafeCheckpointWarning,
    train_projection_head,
)
from tests.factories.toy_training_data import toy_training_data

pytestmark = pytest.mark.filterwarnings("ignore:.*IterableDataset.*:UserWarning")

PARAMS = HeadParams(
    lr=3e-3, embedding_size=32, hidden_size=64, dropout=0.0, batch_size=64, warmup_epochs=1
)
SETTINGS = TrainingSettings(
    max_epochs=3,
    samples_per_epoch=512,
    difficulty_update_freq=2,
    num_threads=1,
    tracking=TrackingSettings(enabled=False),
)


class StopAfterEpoch(L.Callback):
    """Ends training after EPOCH (0-based), once that epoch's checkpoints are written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return toy_training_data()


@pytest.fixture(scope="module")
def trained(data: TrainingData, tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    return train_projection_head(data, PARAMS, SETTINGS, tmp_path_factory.mktemp("run"))


def test_the_head_beats_the_raw_backbone_on_val_and_test(trained: TrainingResult) -> None:
    assert trained.head_val.recall_at[1] > trained.backbone_val.recall_at[1] + 0.2
    assert trained.head_test.recall_at[1] > trained.backbone_test.recall_at[1] + 0.2
    assert trained.epochs_run == 3
    assert [entry["epoch"] for entry in trained.history] == [0, 1, 2]


def test_the_best_checkpoint_is_chosen_by_validation_recall_at_1(trained: TrainingResult) -> None:
    recalls = [entry["val/recall@1"] for entry in trained.history]
    assert trained.best_epoch == int(np.argmax(recalls))
    assert trained.best_val_recall_at_1 == max(recalls)
    assert trained.best_checkpoint.name == f"best-epoch{trained.best_epoch:03d}.ckpt"
    # The exported head is the best checkpoint's: it reproduces the best validation recall.
    assert trained.head_val.recall_at[1] == pytest.approx(trained.best_val_recall_at_1)
    checkpoint = torch.load(trained.last_checkpoint, map_location="cpu", weights_only=False)
    [checkpoint_state] = [v for k, v in checkpoint["callbacks"].items() if "ModelCheckpoint" in k]
    assert "'monitor': 'val/recall@1'" in next(
        k for k in checkpoint["callbacks"] if "ModelCheckpoint" in k
    )
    assert float(checkpoint_state["best_model_score"]) == pytest.approx(max(recalls))
    assert any("EarlyStopping{'monitor': 'val/recall@1'" in k for k in checkpoint["callbacks"])


def test_head_and_metrics_files_describe_the_run(
    trained: TrainingResult, data: TrainingData
) -> None:
    metrics = json.loads(trained.metrics_path.read_text())
    assert metrics["best_val_recall@1"] == trained.best_val_recall_at_1
    assert metrics["head"]["test"]["recall@1"] == trained.head_test.recall_at[1]
    assert metrics["backbone"]["test"]["recall@1"] == trained.backbone_test.recall_at[1]
    assert metrics["params"]["margin"] == PARAMS.margin
    assert len(metrics["history"]) == 3
    assert set(metrics["bandit"]) == {"pulls", "mean_reward", "score", "share"}
    vectors = embed_with_head(trained.head_path, data.test.embeddings)
    test = data.test
    recomputed = evaluate_retrieval(vectors, test.labels, test.image_lat, test.image_lon)
    assert recomputed.recall_at[1] == trained.head_test.recall_at[1]
    leftovers = [p.name for p in trained.head_path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_resuming_from_last_checkpoint_continues_exactly(
    data: TrainingData, tmp_path: Path
) -> None:
    straight = train_projection_head(data, PARAMS, SETTINGS, tmp_path / "straight")
    interrupted = train_projection_head(
        data, PARAMS, SETTINGS, tmp_path / "resumed", extra_callbacks=[StopAfterEpoch(1)]
    )
    assert interrupted.epochs_run == 2
    resumed = train_projection_head(data, PARAMS, SETTINGS, tmp_path / "resumed")

    assert resumed.epochs_run == 3
    assert [e["epoch"] for e in resumed.history] == [0, 1, 2]
    assert resumed.bandit_summary == straight.bandit_summary
    for ours, theirs in zip(resumed.history, straight.history, strict=True):
        assert ours["band_share"] == theirs["band_share"]
        assert ours["val/recall@1"] == theirs["val/recall@1"]
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
    assert resumed.history[2]["elapsed_s"] >= resumed.history[1]["elapsed_s"]


def test_resuming_with_other_parameters_is_refused_and_resume_false_starts_afresh(
    data: TrainingData, tmp_path: Path
) -> None:
    one_epoch = replace(SETTINGS, max_epochs=1)
    train_projection_head(data, PARAMS, one_epoch, tmp_path)
    other = replace(PARAMS, margin=0.5)
    with pytest.raises(CheckpointMismatchError, match="margin"):
        train_projection_head(data, other, one_epoch, tmp_path)
    fresh = train_projection_head(data, other, one_epoch, tmp_path, resume=False)
    assert fresh.epochs_run == 1


def test_auto_batch_size_scales_the_batch_and_steps_per_epoch_follow(
    data: TrainingData, tmp_path: Path
) -> None:
    settings = replace(SETTINGS, max_epochs=1, auto_batch_size=True, auto_batch_size_max_trials=3)
    result = train_projection_head(data, replace(PARAMS, batch_size=32), settings, tmp_path)
    assert result.batch_size == 128  # power mode: 32 -> 64 -> 128 in three trials
    assert result.history[0]["steps"] == math.ceil(512 / 128)
    checkpoint = torch.load(result.last_checkpoint, map_location="cpu", weights_only=False)
    assert checkpoint["hyper_parameters"]["batch_size"] == 128
    assert not list(tmp_path.glob(".scale_batch_size*"))


class _Planted:
    """A pickle that, loaded as one, would create MARKER: what an attacker plants."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_pickle_in_the_checkpoint_folder_is_never_executed(
    data: TrainingData, tmp_path: Path
) -> None:
    marker = tmp_path / "code-ran"
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    torch.save({"state_dict": _Planted(marker)}, output_dir / "last.ckpt")
    with pytest.warns(UnsafeCheckpointWarning, match="can be read as plain data"):
        result = train_projection_head(data, PARAMS, replace(SETTINGS, max_epochs=1), output_dir)
    assert not marker.exists()
    assert result.epochs_run == 1 and [e["epoch"] for e in result.history] == [0]


def test_evaluation_queries_a_seeded_sample_of_each_split_when_capped(
    data: TrainingData, tmp_path: Path
) -> None:
    settings = replace(SETTINGS, max_epochs=1, eval_queries=25)
    result = train_projection_head(data, PARAMS, settings, tmp_path)
    for metrics in (result.head_val, result.head_test, result.backbone_test):
        assert metrics.queries == 25 < metrics.eligible
        low, high = metrics.intervals["recall@1"]
        assert low <= metrics.recall_at[1] <= high
    # every epoch's validation used the same cap
    assert result.history[0]["val/queries"] == 25
    vectors = embed_with_head(result.head_path, data.test.embeddings)
    test = data.test
    full = evaluate_retrieval(vectors, test.labels, test.image_lat, test.image_lon)
    assert full.queries == result.head_test.eligible
