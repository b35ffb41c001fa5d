from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from geotriplet_assets.config import ConfigError, SamplingName, parse_config
from geotriplet_assets.stage_settings import (
    params_from_config,
    settings_from_config,
    study_settings,
    study_storage_url,
)
from geotriplet_assets.training.params import SAMPLING_MODES, HeadParams, TrainingSettings

CONFIG = """
data: {batch_size: 32, num_difficulty_levels: 7, ucb_alpha: 1.5}
model: {embedding_size: 64, hidden_size: 300, dropout: 0.2, margin: 0.4}
train: {lr: 0.002, weight_decay: 0.001, warmup_epochs: 2, max_epochs: 9,
        samples_per_epoch: 5000, seed: 3, difficulty_update_freq: 7, precision: 32,
        eval_queries: 500, sampling: random}
logging: {project_name: proj, exp_name: run1, offline: false}
auto_batch_size: {enabled: true, mode: binsearch}
serving: {locate_k: 12, locate_cluster_radius_m: 250}
"""


def test_head_params_come_from_the_original_config_keys() -> None:
    params = params_from_config(parse_config(CONFIG))
    assert params == HeadParams(
        lr=0.002,
        weight_decay=0.001,
        embedding_size=64,
        hidden_size=300,
        dropout=0.2,
        margin=0.4,
        num_difficulty_levels=7,
        ucb_alpha=1.5,
        batch_size=32,
        warmup_epochs=2,
    )


def test_settings_come_from_the_config_with_tracking_under_the_data_root(tmp_path: Path) -> None:
    settings = settings_from_config(parse_config(CONFIG), tmp_path)
    assert (settings.max_epochs, settings.samples_per_epoch, settings.seed) == (9, 5000, 3)
    assert settings.difficulty_update_freq == 7
    assert settings.sampling == "random"
    assert settings.precision == "32"
    assert (settings.auto_batch_size, settings.auto_batch_size_mode) == (True, "binsearch")
    # the evaluation locates queries as the bundle's /locate will
    assert (settings.locate_k, settings.locate_cluster_radius_m) == (12, 250.0)
    assert settings.eval_queries == 500
    assert settings.tracking.project == "proj"
    assert settings.tracking.experiment_name == "run1"
    assert settings.tracking.offline is False
    assert settings.tracking.save_dir == tmp_path / "wandb"


def test_tracking_is_offline_by_default(tmp_path: Path) -> None:
    assert settings_from_config(parse_config("{}"), tmp_path).tracking.offline is True


def test_storage_defaults_to_sqlite_under_the_data_root(tmp_path: Path) -> None:
    config = parse_config(f"data: {{root: {tmp_path}}}")
    assert study_storage_url(config) == f"sqlite:///{tmp_path / 'optuna' / 'studies.db'}"
    assert (tmp_path / "optuna").is_dir()
    relative = parse_config(f"data: {{root: {tmp_path}}}\noptuna: {{storage: sqlite:///o/x.db}}")
    assert study_storage_url(relative) == f"sqlite:///{tmp_path / 'o' / 'x.db'}"
    other = parse_config("optuna: {storage: 'postgresql://u@h/db'}")
    assert study_storage_url(other) == "postgresql://u@h/db"


def test_trials_are_tracked_in_the_optuna_project_and_group(tmp_path: Path) -> None:
    config = parse_config("optuna: {project_name: tuning, group_name: g1}")
    settings = study_settings(config, tmp_path)
    assert (settings.tracking.project, settings.tracking.group) == ("tuning", "g1")
    assert settings.tracking.save_dir == tmp_path / "wandb"


def test_the_config_offers_exactly_the_trainer_sampling_modes() -> None:
    assert get_args(SamplingName) == SAMPLING_MODES
    assert parse_config("{}").train.sampling == TrainingSettings().sampling
    with pytest.raises(ConfigError, match="sampling"):
        parse_config("train: {sampling: hardest}")
