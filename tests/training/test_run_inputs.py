from dataclasses import replace
from pathlib import Path

from geotriplet_assets.training.params import HeadParams, TrackingSettings, TrainingSettings
from geotriplet_assets.training.run_inputs import (
    record_inputs,
    same_inputs_as_before,
    training_inputs_fingerprint,
)
from tests.factories.toy_training_data import toy_training_data

PARAMS = HeadParams(embedding_size=32, hidden_size=64)
SETTINGS = TrainingSettings(max_epochs=2, tracking=TrackingSettings(enabled=False))


def test_only_identical_inputs_resume(tmp_path: Path) -> None:
    data = toy_training_data()
    fingerprint = training_inputs_fingerprint(data, PARAMS, SETTINGS)
    assert fingerprint == training_inputs_fingerprint(toy_training_data(), PARAMS, SETTINGS)
    assert not same_inputs_as_before(tmp_path, fingerprint)
    record_inputs(tmp_path, fingerprint)
    assert same_inputs_as_before(tmp_path, fingerprint)

    other_data = training_inputs_fingerprint(toy_training_data(seed=1), PARAMS, SETTINGS)
    other_params = training_inputs_fingerprint(data, replace(PARAMS, lr=0.01), SETTINGS)
    other_settings = training_inputs_fingerprint(data, PARAMS, replace(SETTINGS, max_epochs=3))
    for changed in (other_data, other_params, other_settings):
        assert changed != fingerprint
        assert not same_inputs_as_before(tmp_path, changed)


def test_a_finished_run_of_the_same_inputs_is_not_resumed(tmp_path: Path) -> None:
    fingerprint = training_inputs_fingerprint(toy_training_data(), PARAMS, SETTINGS)
    record_inputs(tmp_path, fingerprint)
    assert same_inputs_as_before(tmp_path, fingerprint)
    record_inputs(tmp_path, fingerprint, finished=True)
    assert not same_inputs_as_before(tmp_path, fingerprint)


def test_a_damaged_record_means_start_afresh(tmp_path: Path) -> None:
    (tmp_path / "inputs.json").write_text("{not json")
    assert not same_inputs_as_before(tmp_path, "anything")
