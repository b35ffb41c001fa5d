"""Materialise the whole asset graph in-process through Dagster, stage by stage.

Partitioned assets need their partitions to exist before they can run, and partitions are
discovered by the catalogue, so one materialisation is three kinds of run: the assets
upstream of the partitioned ones, one run per DatasetID partition of the partitioned ones,
and all the others. The stages come from the asset graph itself (which assets are
partitioned, and what lies upstream of them), never from a list kept by hand. Each run is a
real Dagster run recorded in the instance, visible in `dagster dev`.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import dagster as dg

from geotriplet_assets.catalogue.image_catalog import read_catalog
from geotriplet_assets.config import GeoTripletConfig
from geotriplet_assets.definitions import ALL_ASSETS, ALL_CHECKS
from geotriplet_assets.defs.partitions import DATASET_PARTITIONS
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.paths import dataset_partition_key

HOST_TAG = "geotriplet/host"
PID_TAG = "geotriplet/pid"
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
LOCAL_INSTANCE_YAML = "telemetry:\n  enabled: false\n"


class MaterializationFailed(RuntimeError):
    """A run failed or a blocking asset check did not pass."""


class _ErrorInfo(Protocol):
    """What Dagster records of a step's exception (its SerializableErrorInfo)."""

    cls_name: str | None
    message: str
    cause: _ErrorInfo | None


@dataclass(frozen=True)
class Stages:
    """The three selections one materialisation runs, derived from the asset graph."""

    upstream: dg.AssetSelection
    partitioned: dg.AssetSelection
    downstream: dg.AssetSelection


def stages(assets: list[dg.AssetsDefinition]) -> Stages:
    partitioned = dg.AssetSelection.assets(*(a for a in assets if a.partitions_def is not None))
    upstream = partitioned.upstream() - partitioned
    return Stages(upstream, partitioned, dg.AssetSelection.all() - upstream - partitioned)


@dataclass
class RunRecord:
    label: str
    run_id: str
    assets: list[str]
    seconds: float
    metadata: dict[str, dict[str, object]] = field(default_factory=dict)


def local_instance(config: GeoTripletConfig) -> dg.DagsterInstance:
    """The instance under $DAGSTER_HOME, else a SQLite one under the data root."""
    if not os.environ.get("DAGSTER_HOME"):
        home = config.dagster_home
        home.mkdir(parents=True, exist_ok=True)
        instance_yaml = home / "dagster.yaml"
        if not instance_yaml.exists():
            instance_yaml.write_text(LOCAL_INSTANCE_YAML)
        os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def _failed_blocking_checks(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    ]


def _root_cause(error: _ErrorInfo) -> str:
    """The user's exception behind Dagster's step-failure wrappers."""
    while error.cause is not None:
        error = error.cause
    return f"{error.cls_name}: {error.message.strip()}"


def _run(
    label: str,
    selection: dg.AssetSelection,
    settings: GeoTripletSettings,
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
) -> RunRecord:
    started = time.monotonic()
    try:
        result = dg.materialize(
            [*ALL_ASSETS, *ALL_CHECKS],
            selection=selection,
            partition_key=partition_key,
            instance=instance,
            resources={"settings": settings},
            run_config=QUIET_RUN_CONFIG,
            tags=_process_tags(),
            raise_on_error=False,
        )
    except dg.DagsterError as exc:
        raise MaterializationFailed(f"{label}: {exc}") from exc
    if not result.success:
        failures = [
            f"{event.step_key}: {_root_cause(event.event_specific_data.error)}"
            for event in result.all_events
            if event.is_step_failure and event.event_specific_data.error is not None
        ]
        raise MaterializationFailed(
            f"{label} failed (run {result.run_id}): " + "; ".join(failures)
        )
    failed_checks = _failed_blocking_checks(result)
    if failed_checks:
        raise MaterializationFailed(
            f"{label}: blocking asset checks failed: {', '.join(failed_checks)} "
            f"(run {result.run_id}; see its check metadata)"
        )
    record = RunRecord(
        label,
        result.run_id,
        sorted(key.to_user_string() for key in selection.resolve(ALL_ASSETS)),
        time.monotonic() - started,
    )
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        record.metadata[materialization.asset_key.to_user_string()] = {
            key: value.value for key, value in materialization.metadata.items()
        }
    return record


def _process_tags() -> dict[str, str]:
    """Which process runs the in-process run: to tell, later, whether it is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def fail_abandoned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs of `geotriplet materialize` on this host whose process is gone
    (killed, out of memory) while they were STARTED; returns their ids. A deployment's
    daemon does the same for its runs (`run_monitoring` in dagster.yaml)."""
    started = instance.get_runs(
        filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED], tags={HOST_TAG: socket.gethostname()}
        )
    )
    abandoned = [run for run in started if not _alive(int(run.tags.get(PID_TAG, "0")))]
    for run in abandoned:
        instance.report_run_failed(
            run, f"process {run.tags.get(PID_TAG)} ended without finishing the run"
        )
    return [run.run_id for run in abandoned]


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _run_partition(label: str, config_path: str, partition_key: str) -> RunRecord:
    """One partition's run in a process of its own, on the instance of $DAGSTER_HOME."""
    settings = GeoTripletSettings(config_path=config_path)
    partitioned = stages(ALL_ASSETS).partitioned
    return _run(label, partitioned, settings, dg.DagsterInstance.get(), partition_key)


def materialize_all(
    config_path: Path | None,
    instance: dg.DagsterInstance,
    on_stage: Callable[[str, int, int], None] | None = None,
) -> list[RunRecord]:
    """Materialise every asset; ON_STAGE(label, index, total) is called before each run."""
    settings = GeoTripletSettings(config_path=str(config_path) if config_path else "")
    fail_abandoned_runs(instance)
    runs = stages(ALL_ASSETS)
    records = []

    def announce(label: str, index: int, total: int) -> None:
        if on_stage is not None:
            on_stage(label, index, total)

    announce("image catalogue", 0, 3)
    records.append(_run("image catalogue", runs.upstream, settings, instance))
    catalog = read_catalog(settings.layout.catalog_dir)
    wanted = sorted({dataset_partition_key(i) for i in catalog.images["dataset_id"].unique()})
    registered = set(instance.get_dynamic_partitions(DATASET_PARTITIONS.name))
    missing = [key for key in wanted if key not in registered]
    if missing:
        raise MaterializationFailed(f"partitions {missing} were not registered by image_catalog")
    labels = {key: f"embeddings {key} ({n}/{len(wanted)})" for n, key in enumerate(wanted, 1)}
    compute = settings.config.compute
    if compute.mode == "slurm":
        # the partitions' runs only follow their jobs: submit them together, so that regions
        # embed in parallel on the cluster's nodes. Processes, not threads: the SQLite instance
        # serves several processes (as under `dagster dev`) but not threads of one.
        announce(f"embeddings: {len(wanted)} partitions as SLURM jobs", 1, 3)
        context = multiprocessing.get_context("spawn")
        workers = min(compute.slurm.parallel_partitions, len(wanted))
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [
                pool.submit(_run_partition, labels[key], settings.config_path, key)
                for key in wanted
            ]
            records.extend(future.result() for future in futures)
    else:
        for key in wanted:
            announce(labels[key], 1, 3)
            records.append(_run(labels[key], runs.partitioned, settings, instance, key))
    announce("geography, training and serving", 2, 3)
    records.append(_run("geography, training and serving", runs.downstream, settings, instance))
    announce("done", 3, 3)
    return records
