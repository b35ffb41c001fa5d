"""The targets, dataset_splits and geo_neighbours assets on the tiny city."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from geotriplet_assets.geodesy import great_circle_m
from tests.factories.tiny_city import TinyCityPipeline, materialization_metadata

pytestmark = pytest.mark.slow


def test_targets_splits_and_neighbours_are_consistent(pipeline: TinyCityPipeline) -> None:
    targets = pd.read_parquet(pipeline.layout.targets_path)
    splits = pd.read_parquet(pipeline.layout.splits_path)
    assert targets["target_index"].tolist() == list(range(len(targets)))
    assert set(splits["split"].astype(str)) <= {"train", "val", "test", "excluded"}
    assert (splits["split"] == "train").sum() > 0
    assert materialization_metadata(pipeline.instance, "targets", first=True)["targets"] == len(
        targets
    )
    with h5py.File(pipeline.layout.neighbours_path, "r") as graph:
        assert graph.attrs["k"] == 5
        train = graph["train"]
        members = train["target_index"][...]
        neighbours = train["neighbours"][...]
        distances = train["distances_m"][...]
    expected_members = splits.loc[splits["split"] == "train", "target_index"].to_numpy()
    assert sorted(members) == sorted(expected_members)
    assert neighbours.shape == (len(members), min(5, len(members) - 1))
    assert np.all(np.diff(distances, axis=1) >= 0)
    lat, lon = targets["lat"].to_numpy(), targets["lon"].to_numpy()
    source = np.repeat(members, neighbours.shape[1])
    recomputed = great_circle_m(
        lat[source], lon[source], lat[neighbours.ravel()], lon[neighbours.ravel()]
    )
    np.testing.assert_allclose(distances.ravel(), recomputed, rtol=1e-5, atol=0.05)
