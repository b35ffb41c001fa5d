"""The job end of compute.mode slurm (`python -m geotriplet_assets.defs.slurm_job`) run as a
real process under Dagster Pipes, on the tiny city: it reports the local step's metadata, and a
step that fails in the job fails the asset with the job's error. SLURM itself is exercised on a
real cluster in tests/e2e/test_slurm_stack.py."""

from __future__ import annotations

import os
import sys

import dagster as dg
import pandas as pd
import pytest

from geotriplet_assets.config import load_config
from geotriplet_assets.defs.features import embed_partition
from geotriplet_assets.defs.metadata import deserialized_metadata
from tests.factories.tiny_city import TinyCityPipeline

pytestmark = pytest.mark.slow


def _job_asset(partition: str, config_path: str, step: str) -> dg.AssetsDefinition:
    @dg.asset(
        name="backbone_embeddings", partitions_def=dg.StaticPartitionsDefinition([partition])
    )
    def job(context) -> dg.MaterializeResult:  # unannotated: Dagster resolves no string
        completed = dg.PipesSubprocessClient().run(
            command=[sys.executable, "-m", "geotriplet_assets.defs.slurm_job", step],
            context=context,
            env={**os.environ, "GEOTRIPLET_CONFIG": config_path},
        )
        (message,) = completed.get_custom_messages()
        return dg.MaterializeResult(metadata=deserialized_metadata(message))

    return job


class _Log:
    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass


def test_the_job_reports_what_the_local_step_reports(pipeline: TinyCityPipeline) -> None:
    catalog = pd.read_parquet(pipeline.layout.catalog_dir / "images.parquet")
    partition = f"{int(catalog['dataset_id'].min()):04d}"
    result = dg.materialize(
        [_job_asset(partition, str(pipeline.config_path), "backbone_embeddings")],
        partition_key=partition,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    through_job = event.materialization.metadata
    local = embed_partition(load_config(pipeline.config_path), pipeline.layout, partition, _Log())
    assert set(through_job) == set(local)
    assert through_job["reused"].value is True  # the session's shard is up to date
    for key in ("fingerprint", "embedded", "rejected", "dim", "weights_sha256", "mean_norm"):
        assert through_job[key].value == local[key], key
    assert through_job["path"] == local["path"]
    assert through_job["rejections_by_reason"] == local["rejections_by_reason"]


def test_a_step_that_fails_in_the_job_fails_the_asset_with_its_error(
    pipeline: TinyCityPipeline,
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [_job_asset("9999", str(pipeline.config_path), "backbone_embeddings")],
        partition_key="9999",
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    (closed,) = [
        entry
        for entry in instance.all_logs(result.run_id)
        if "closed with exception" in (entry.message or "")
    ]
    assert "DatasetID 9999 has no catalogued images" in str(closed.dagster_event)
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    assert "failed with code 1" in str(failure.step_failure_data.error)
