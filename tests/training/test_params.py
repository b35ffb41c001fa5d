from __future__ import annotations

import pytest

from geotriplet_assets.training.params import (
    HeadParams,
    TrainingSettings,
    TrainingSettingsError,
)


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: HeadParams(lr=0), "HeadParams.lr"),
        (lambda: HeadParams(dropout=1.0), "HeadParams.dropout"),
        (lambda: HeadParams(hidden_size=0), "HeadParams.hidden_size"),
        (lambda: TrainingSettings(samples_per_epoch=0), "TrainingSettings.samples_per_epoch"),
        (lambda: TrainingSettings(sampling="greedy"), "TrainingSettings.sampling"),
        (lambda: TrainingSettings(num_threads=0), "TrainingSettings.num_threads"),
        (lambda: TrainingSettings(locate_k=0), "TrainingSettings.locate_k"),
        (lambda: TrainingSettings(eval_queries=0), "TrainingSettings.eval_queries"),
        (lambda: TrainingSettings(recall_radius_m=0.0), "TrainingSettings.recall_radius_m"),
        (
            lambda: TrainingSettings(locate_cluster_radius_m=0.0),
            "TrainingSettings.locate_cluster_radius_m",
        ),
    ],
)
def test_bad_values_are_refused_with_their_name(make, named: str) -> None:
    with pytest.raises(TrainingSettingsError, match=named):
        make()
