from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from geotriplet_assets.training.optuna_search import (
    MARGIN_RANGE,
    params_with,
    run_study,
    suggest_params,
)
from geotriplet_assets.training.params import HeadParams, TrackingSettings, TrainingSettings
from geotriplet_assets.training.split_data import TrainingData
from tests.factories.toy_training_data import toy_training_data

pytestmark = pytest.mark.filterwarnings("ignore:.*IterableDataset.*:UserWarning")

BASE = HeadParams(embedding_size=32, hidden_size=64, dropout=0.0, batch_size=64)
SETTINGS = TrainingSettings(
    max_epochs=2,
    samples_per_epoch=256,
    difficulty_update_freq=2,
    num_threads=1,
    tracking=TrackingSettings(enabled=False),
)
GOOD = {
    "lr": 5e-3,
    "weight_decay": 1e-4,
    "embedding_size": 64,
    "margin": 0.3,
    "num_difficulty_levels": 4,
    "ucb_alpha": 2.0,
    "batch_size": 64,
    "warmup_epochs": 0,
}
HOPELESS = {**GOOD, "lr": 1e-5, "warmup_epochs": 3}


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return toy_training_data()


def test_two_trials_persist_in_sqlite_and_give_usable_best_params(
    data: TrainingData, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = run_study(
        data,
        BASE,
        SETTINGS,
        storage=storage,
        study_name="s",
        n_trials=2,
        timeout_s=None,
        output_dir=tmp_path / "trials",
        seed=0,
    )
    assert len(result.trials) == 2
    assert set(result.trials["state"]) == {"COMPLETE"}
    assert result.best_value == result.trials["value"].max()
    assert set(result.best_params) == set(GOOD)
    assert MARGIN_RANGE[0] <= result.best_params["margin"] <= MARGIN_RANGE[1]
    head = result.head_params(BASE)
    assert head.lr == result.best_params["lr"]
    assert (head.hidden_size, head.dropout) == (BASE.hidden_size, BASE.dropout)
    assert (tmp_path / "trials" / "trial-0001" / "head.pt").is_file()

    reloaded = optuna.load_study(study_name="s", storage=storage)
    assert reloaded.best_params == result.best_params
    again = run_study(
        data,
        BASE,
        SETTINGS,
        storage=storage,
        study_name="s",
        n_trials=1,
        timeout_s=None,
        output_dir=tmp_path / "trials",
        seed=1,
    )
    assert len(again.trials) == 3, "the study continues where it stopped"


def test_a_trial_that_falls_behind_is_pruned(data: TrainingData, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="p", direction="maximize")
    for params in (GOOD, GOOD, HOPELESS):
        study.enqueue_trial(params)
    result = run_study(
        data,
        BASE,
        SETTINGS,
        storage=storage,
        study_name="p",
        n_trials=3,
        timeout_s=None,
        output_dir=tmp_path / "trials",
        seed=0,
    )
    assert list(result.trials["state"]) == ["COMPLETE", "COMPLETE", "PRUNED"]
    pruned = optuna.load_study(study_name="p", storage=storage).trials[2]
    assert list(pruned.intermediate_values) == [0, 1]
    assert result.best_params["lr"] == GOOD["lr"]


def test_the_search_space_is_the_original_one_with_a_cosine_margin() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        params = suggest_params(trial, BASE)
        assert 1e-5 <= params.lr <= 1e-2
        assert 1e-6 <= params.weight_decay <= 1e-2
        assert params.embedding_size in (64, 128, 256, 512)
        assert 0.05 <= params.margin <= 1.0
        assert 3 <= params.num_difficulty_levels <= 10
        assert 0.5 <= params.ucb_alpha <= 5.0
        study.tell(trial, 0.0)
    assert params_with(BASE, {"lr": 0.5, "unknown": 1}).lr == 0.5
