"""`geotriplet materialize`: every asset through Dagster, in-process, with a progress display,
then a summary of where each artefact is and the figures of the head and the bundle."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from geotriplet_assets.cli.console import console, progress_display
from geotriplet_assets.cli.staged_runs import (
    MaterializationFailed,
    RunRecord,
    local_instance,
    materialize_all,
)
from geotriplet_assets.config import GeoTripletConfig
from geotriplet_assets.defs.progress import progress_sink
from geotriplet_assets.paths import ArtefactLayout


def run(config: GeoTripletConfig, args: argparse.Namespace) -> int:
    # Lightning sets its logger to INFO on import; its tips would break up the progress display
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    if config.data.hdf5_path:
        source = config.resolve(config.data.hdf5_path)
        if not source.is_file():
            console.print(
                f"[red]data.hdf5_path {source} does not exist[/red]: point it at a dataset.h5 "
                "written by the original project, or unset it to catalogue data.input_dir"
            )
            return 1
    elif not config.input_dir.is_dir():
        console.print(
            f"[red]input folder {config.input_dir} does not exist[/red]: point data.input_dir "
            "at your images, or run `geotriplet synth` to generate the demo city"
        )
        return 1
    problem = _unwritable(config.data_root)
    if problem:
        console.print(
            f"[red]the data root {config.data_root} cannot be written[/red] ({problem}): every "
            "artefact and the local Dagster instance live there; set data.root or "
            "GEOTRIPLET_DATA_ROOT to a writable folder"
        )
        return 1
    instance = local_instance(config)
    started = time.monotonic()
    with progress_display() as progress:
        stages = progress.add_task("materialising", total=3)
        detail: dict[str, int] = {}

        def on_stage(label: str, index: int, total: int) -> None:
            progress.update(stages, description=label, completed=index, total=total)

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in detail:
                detail[stage] = progress.add_task(stage, total=total)
            progress.update(detail[stage], completed=done, total=total)

        try:
            with progress_sink(on_progress):
                records = materialize_all(args.config_path, instance, on_stage)
        except MaterializationFailed as exc:
            progress.stop()
            console.print(f"[red]materialisation failed:[/red] {exc}")
            return 1
    _print_summary(config, records, time.monotonic() - started)
    return 0


def _unwritable(root: Path) -> str | None:
    """Why nothing can be written under ROOT, or None when a file can be created there."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
            pass
    except OSError as error:
        return f"{type(error).__name__}: {error.strerror or error}"
    return None


def _print_summary(config: GeoTripletConfig, records: list[RunRecord], seconds: float) -> None:
    layout = ArtefactLayout(config.data_root)
    metadata: dict[str, dict[str, object]] = {}
    for record in records:
        for asset, values in record.metadata.items():
            metadata.setdefault(asset, {}).update(values)
    catalog = metadata.get("image_catalog", {})
    splits = metadata.get("dataset_splits", {})
    console.print(f"[green]materialised {len(records)} runs in {seconds:.1f} s[/green]")
    for record in records:
        console.print(f"  run {record.run_id[:8]} {record.label}: {record.seconds:.1f} s")
    console.print(
        f"  catalogue: {catalog.get('images')} images, {catalog.get('targets')} targets, "
        f"{catalog.get('rejected_files')} rejected files -> {layout.catalog_dir}"
    )
    console.print(f"  embeddings: {layout.embeddings_dir(config.model.backbone)}")
    console.print(f"  targets: {layout.targets_path}")
    console.print(
        f"  splits: train {splits.get('train_targets')}, val {splits.get('val_targets')}, "
        f"test {splits.get('test_targets')}, excluded {splits.get('excluded_targets')} "
        f"-> {layout.splits_path}"
    )
    console.print(f"  neighbours: {layout.neighbours_path}")
    head = metadata.get("projection_head", {})
    if head:
        console.print(
            f"  projection head: test recall@1 {head['test_recall_at_1']:.3f} "
            f"(raw backbone {head['backbone_test_recall_at_1']:.3f}), "
            f"{_recall_near(head, 'test_recall_at_1_')}, "
            f"mAP@R {head['test_map_at_r']:.3f}, "
            f"top hit median error {head['test_median_error_m']:.0f} m, "
            f"{head['test_within_25m']:.0%} within 25 m (/locate "
            f"{head['test_locate_median_error_m']:.0f} m, {head['test_locate_within_25m']:.0%}), "
            f"best epoch {head['best_epoch']} after {head['seconds_to_best']:.0f} s "
            f"-> {head['head_path']}"
        )
    bundle = metadata.get("search_index", {})
    if bundle:
        console.print(
            f"  search bundle {bundle['bundle_version']}: {bundle['vectors']} vectors, "
            f"{bundle['index_type']} index "
            f"(recall@10 vs exact {bundle['recall_at_10_vs_exact']:.3f}) -> {layout.bundles_dir}"
        )
    report = metadata.get("retrieval_report", {})
    if report and not report["queries"]:
        console.print(
            "  through the bundle: nothing measured, no test image's building has another "
            f"view (see the splits above) -> {layout.retrieval_report_path}"
        )
    elif report:
        console.print(
            f"  through the bundle: test recall@1 {report['recall_at_1']:.3f}, "
            f"{_recall_near(report, 'recall_at_1_')}, "
            f"recall@10 {report['recall_at_10']:.3f}, mAP@R {report['map_at_r']:.3f} "
            f"over {_queries_text(report)} -> {layout.retrieval_report_path}"
        )
        console.print(
            f"  where was it taken: /locate median error {report['locate_median_error_m']:.0f} m, "
            f"{report['locate_within_25m']:.0%} within 25 m (top hit: "
            f"{report['top1_median_error_m']:.0f} m, {report['top1_within_25m']:.0%}); the truth "
            f"within the stated uncertainty {report['locate_within_uncertainty']:.0%} of the time "
            f"(mean confidence {report['locate_mean_confidence']:.2f})"
        )
    console.print(
        f"  Dagster runs are recorded in {os.environ.get('DAGSTER_HOME')}; browse them with "
        "`make ui`"
    )


def _queries_text(report: dict) -> str:
    """ "285 queries", or for a sample "10000 of 2500000 queries (recall@1 95% CI a-b)"."""
    queries, eligible = report["queries"], report.get("eligible_queries", report["queries"])
    if queries >= eligible:
        return f"{queries} queries"
    low, high = report.get("recall_at_1_ci95", (float("nan"), float("nan")))
    return f"{queries} of {eligible} queries (recall@1 95% CI {low:.3f}-{high:.3f})"


def _recall_near(metadata: dict, prefix: str) -> str:
    """ "within 25 m 0.812": the place-recognition recall@1 among METADATA's PREFIX<r>m keys."""
    for key, value in metadata.items():
        radius = key.removeprefix(prefix)
        if (
            key.startswith(prefix)
            and radius.endswith("m")
            and radius[:-1].replace(".", "").isdigit()
        ):
            return f"within {radius[:-1]} m {float(value):.3f}"
    return "within a radius: not measured"
