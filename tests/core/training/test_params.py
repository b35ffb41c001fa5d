from __future__ import annotations

from pathlib import Path

import pytest

from geotriplet_assets.core.config import parse_config
from geotriplet_assets.core.training.params import (
    HeadParams,
    TrainingSettings,
    TrainingSettingsError,
    params_from_config,
    settings_from_config,
)

CONFIG = """
data: {batch_size: 32, num_difficulty_levels: 7, ucb_alpha: 1.5}
model: {embedding_size: 64, hidden_size: 300, dropout: 0.2, margin: 0.4}
train: {lr: 0.002, weight_decay: 0.001, warmup_epochs: 2, max_epochs: 9,
        samples_per_epoch: 5000, seed: 3, difficulty_update_freq: 7, precision: 32}
logging: {project_name: proj, exp_name: run1, offline: false}
auto_batch_size: {enabled: true, mode: binsearch}
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
    assert settings.precision == "32"
    assert (settings.auto_batch_size, settings.auto_batch_size_mode) == (True, "binsearch")
    assert settings.tracking.project == "proj"
    assert settings.tracking.experiment_name == "run1"
    assert settings.tracking.offline is False
    assert settings.tracking.save_dir == tmp_path / "wandb"


def test_tracking_is_offline_by_default(tmp_path: Path) -> None:
    assert settings_from_config(parse_config("{}"), tmp_path).tracking.offline is True


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: HeadParams(lr=0), "HeadParams.lr"),
        (lambda: HeadParams(dropout=1.0), "HeadParams.dropout"),
        (lambda: HeadParams(hidden_size=0), "HeadParams.hidden_size"),
        (lambda: TrainingSettings(samples_per_epoch=0), "TrainingSettings.samples_per_epoch"),
        (lambda: TrainingSettings(sampling="greedy"), "TrainingSettings.sampling"),
        (lambda: TrainingSettings(num_threads=0), "TrainingSettings.num_threads"),
    ],
)
def test_bad_values_are_refused_with_their_name(make, named: str) -> None:
    with pytest.raises(TrainingSettingsError, match=named):
        make()
