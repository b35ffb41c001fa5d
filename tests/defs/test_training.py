"""The projection_head and hyperparameter_search assets on the tiny city, the original
project's dataset.h5 included."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import optuna
import pytest

from tests.factories.tiny_city import TinyCityPipeline, materialization_metadata

pytestmark = pytest.mark.slow

MODEL = "tf_efficientnet_lite0"


def test_the_projection_head_is_trained_evaluated_and_tracked(pipeline: TinyCityPipeline) -> None:
    metadata = materialization_metadata(pipeline.instance, "projection_head", first=True)
    head_path = Path(metadata["head_path"])
    assert head_path.is_file()
    metrics = json.loads((head_path.parent / "metrics.json").read_text())
    assert metrics["head"]["test"]["recall@1"] == pytest.approx(metadata["test_recall_at_1"])
    # where each test image was taken, from its top hit and as /locate estimates it
    test = metrics["head"]["test"]
    assert test["locate_median_error_m"] == pytest.approx(metadata["test_locate_median_error_m"])
    assert test["locate_within_25m"] == pytest.approx(metadata["test_locate_within_25m"])
    assert test["within_25m"] == pytest.approx(metadata["test_within_25m"])
    # place-recognition recall: a hit within 25 m counts; the tiny city records a building's
    # views within metres of each other, so it is never below same-building recall there
    assert test["recall@1_25m"] == pytest.approx(metadata["test_recall_at_1_25m"])
    assert test["recall@1_25m"] >= test["recall@1"] - 1e-9
    for prefix in ("", "locate_"):
        assert 0 <= test[f"{prefix}median_error_m"] <= test[f"{prefix}p90_error_m"]
        shares = [test[f"{prefix}within_{m}m"] for m in (25, 100, 1000)]
        assert 0 <= shares[0] <= shares[1] <= shares[2] <= 1
    assert 0.0 <= metadata["test_recall_at_1"] <= 1.0
    assert 1 <= metadata["epochs_run"] <= 3
    assert metadata["params_source"] == "configuration"
    assert metadata["resumed"] is False
    assert "data:image/png;base64," in metadata["training_curve"]
    offline_runs = list((pipeline.root / "data").rglob("offline-run-*"))
    assert offline_runs, "no offline W&B run was recorded"
    search = materialization_metadata(pipeline.instance, "hyperparameter_search", first=True)
    assert search["enabled"] is False


def test_the_optuna_search_feeds_its_best_parameters_to_the_head(
    pipeline: TinyCityPipeline,
) -> None:
    from geotriplet_assets.definitions import build_definitions

    config_path = pipeline.root / "optuna.yaml"
    config_path.write_text(
        pipeline.config_path.read_text()
        + "optuna: {enabled: true, n_trials: 2, study_name: e2e}\n"
        + "logging: {checkpoint_dir: checkpoints-optuna}\n"
    )
    config_path.write_text(config_path.read_text().replace("max_epochs: 3", "max_epochs: 2"))
    definitions = build_definitions(str(config_path))
    result = dg.materialize(
        [*definitions.assets],
        selection=["hyperparameter_search", "projection_head"],
        instance=pipeline.instance,
        resources={"settings": definitions.resources["settings"]},
    )
    assert result.success
    search = materialization_metadata(pipeline.instance, "hyperparameter_search")
    assert search["enabled"] is True
    assert search["trials"] >= 2
    study = optuna.load_study(study_name="e2e", storage=search["storage"])
    assert len(study.trials) == search["trials"]
    head = materialization_metadata(pipeline.instance, "projection_head")
    assert head["params_source"] == "optuna study e2e"
    assert head["params"]["lr"] == pytest.approx(study.best_params["lr"])
