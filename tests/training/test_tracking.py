from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from geotriplet_assets.training.params import HeadParams, TrackingSettings, TrainingSettings
from geotriplet_assets.training.trainer import train_projection_head
from tests.factories.toy_training_data import toy_training_data
from tests.training.wandb_run_log import read_wandb_records

pytestmark = pytest.mark.filterwarnings("ignore:.*IterableDataset.*:UserWarning")


def _values(items) -> dict[str, object]:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items}


def test_an_offline_run_records_config_metrics_bandit_and_checkpoint(tmp_path: Path) -> None:
    tracking = TrackingSettings(
        project="geo-test", experiment_name="offline-run", offline=True, save_dir=tmp_path / "wb"
    )
    settings = TrainingSettings(
        max_epochs=2,
        samples_per_epoch=256,
        difficulty_update_freq=2,
        num_threads=1,
        tracking=tracking,
    )
    params = HeadParams(embedding_size=16, hidden_size=32, batch_size=64, margin=0.25)
    result = train_projection_head(toy_training_data(), params, settings, tmp_path / "out")

    [run_dir] = (tmp_path / "wb" / "wandb").glob("offline-run-*")
    [log] = run_dir.glob("run-*.wandb")
    records = read_wandb_records(log)
    kinds = [r.WhichOneof("record_type") for r in records]
    assert kinds.count("run") == 1, kinds
    [run] = [r.run for r in records if r.HasField("run")]
    assert (run.project, run.display_name) == ("geo-test", "offline-run")
    config = _values(run.config.update)
    assert config["margin"] == 0.25
    assert config["samples_per_epoch"] == 256
    assert config["precision_used"] == "32-true"
    logged: dict[str, object] = {}
    for record in records:
        if record.HasField("history"):
            logged.update(_values(record.history.item))
    assert {"train/loss_step", "val/recall@1", "band/0/share", "band/0/success_rate"} <= set(
        logged
    )
    summary: dict[str, object] = {}
    for record in records:
        if record.HasField("summary"):
            summary.update(_values(record.summary.update))
    assert summary["best_val_recall@1"] == pytest.approx(result.best_val_recall_at_1)
    assert summary["head/test/recall@1"] == pytest.approx(result.head_test.recall_at[1])
    assert summary["bandit/pulls"] == pytest.approx(result.bandit_summary["pulls"])
    [artifact] = [r.artifact for r in records if r.HasField("artifact")]
    assert artifact.type == "model"
    files = sorted(entry.path for entry in artifact.manifest.contents)
    assert files == sorted([result.best_checkpoint.name, "head.pt", "metrics.json"])
    assert "exit" in kinds


def test_tracking_can_be_switched_off(tmp_path: Path) -> None:
    settings = TrainingSettings(
        max_epochs=1,
        samples_per_epoch=128,
        num_threads=1,
        tracking=replace(TrackingSettings(save_dir=tmp_path / "wb"), enabled=False),
    )
    train_projection_head(toy_training_data(), HeadParams(batch_size=64), settings, tmp_path / "o")
    assert not (tmp_path / "wb").exists()
