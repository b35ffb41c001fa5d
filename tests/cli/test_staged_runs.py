"""The three kinds of run of `geotriplet materialize`, derived from the asset graph."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg

from geotriplet_assets.cli.staged_runs import fail_abandoned_runs, stages
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


KILLED_RUN = """
import os, signal
import dagster as dg
from geotriplet_assets.cli.staged_runs import _process_tags

@dg.asset
def killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)

dg.materialize([killed], instance=dg.DagsterInstance.get(), tags=_process_tags())
"""


def test_a_run_whose_process_was_killed_is_marked_failed_at_the_next_start(
    tmp_path: Path,
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    environment = {**os.environ, "DAGSTER_HOME": str(home)}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN], env=environment, capture_output=True, timeout=120
    )
    assert killed.returncode == -signal.SIGKILL
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.STARTED
        assert fail_abandoned_runs(instance) == [run.run_id]
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert fail_abandoned_runs(instance) == []
