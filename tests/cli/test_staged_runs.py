"""The three kinds of run of `geotriplet materialize`, derived from the asset graph."""

from __future__ import annotations

import dagster as dg

from geotriplet_assets.cli.staged_runs import stages
from geotriplet_assets.definitions import ALL_ASSETS


def _names(selection: dg.AssetSelection, assets: list[dg.AssetsDefinition]) -> set[str]:
    return {key.to_user_string() for key in selection.resolve(assets)}


def test_stages_split_the_graph_around_its_partitioned_assets() -> None:
    runs = stages(ALL_ASSETS)
    upstream = _names(runs.upstream, ALL_ASSETS)
    partitioned = _names(runs.partitioned, ALL_ASSETS)
    downstream = _names(runs.downstream, ALL_ASSETS)
    assert upstream == {"image_catalog"}
    assert partitioned == {"backbone_embeddings"}
    assert "targets" in downstream and "retrieval_report" in downstream
    every = {asset.key.to_user_string() for asset in ALL_ASSETS}
    assert upstream | partitioned | downstream == every
    assert not (upstream & partitioned or upstream & downstream or partitioned & downstream)
