"""The `geotriplet` command: generate the demo city, materialise the asset graph, serve it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geotriplet_assets.core.config import (
    CONFIG_ENV_VAR,
    ConfigError,
    GeoTripletConfig,
    load_config,
)

console = Console(stderr=True, soft_wrap=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def command_synth(config: GeoTripletConfig, args: argparse.Namespace) -> int:
    from geotriplet_assets.core.synth import SynthConfig, generate_city

    out_dir = Path(args.out).resolve() if args.out else config.input_dir
    preset = args.preset or config.synth.preset
    seed = config.synth.seed if args.seed is None else args.seed
    synth_config = SynthConfig.tiny(seed=seed) if preset == "tiny" else SynthConfig.demo(seed=seed)
    with _progress() as progress:
        task = progress.add_task(f"generating {preset} city", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = generate_city(out_dir, synth_config, progress=on_progress, workers=args.workers)
    console.print(
        f"[green]demo city:[/green] {summary.images} images: {summary.targets} targets seen "
        f"several times and {summary.distractors} single-view distractors "
        f"in {summary.cities} cities "
        f"-> {out_dir} ({summary.seconds:.1f} s)"
    )
    return 0


def command_materialize(config: GeoTripletConfig, args: argparse.Namespace) -> int:
    from geotriplet_assets.orchestration import (
        MaterializationFailed,
        local_instance,
        materialize_all,
    )
    from geotriplet_assets.progress import progress_sink

    # Lightning sets its logger to INFO on import; its tips would break up the progress display
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    if not config.input_dir.is_dir():
        console.print(
            f"[red]input folder {config.input_dir} does not exist[/red]: point data.input_dir "
            "at your images, or run `geotriplet synth` to generate the demo city"
        )
        return 1
    instance = local_instance(config)
    started = time.monotonic()
    with _progress() as progress:
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


def _print_summary(config: GeoTripletConfig, records, seconds: float) -> None:
    from geotriplet_assets.core.artefacts import ArtefactLayout

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
            f"mAP@R {head['test_map_at_r']:.3f}, "
            f"median error {head['test_median_error_m']:.0f} m, "
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
    if report:
        console.print(
            f"  through the bundle: test recall@1 {report['recall_at_1']:.3f}, "
            f"recall@10 {report['recall_at_10']:.3f}, mAP@R {report['map_at_r']:.3f} "
            f"over {report['queries']} queries -> {layout.retrieval_report_path}"
        )
    console.print(
        f"  Dagster runs are recorded in {os.environ.get('DAGSTER_HOME')}; browse them with "
        "`make ui`"
    )


def command_serve(config: GeoTripletConfig, args: argparse.Namespace) -> int:
    import uvicorn

    from geotriplet_assets.core.artefacts import ArtefactLayout
    from geotriplet_assets.demo_query import BUNDLES_DIR_ENV_VAR

    os.environ.setdefault(BUNDLES_DIR_ENV_VAR, str(ArtefactLayout(config.data_root).bundles_dir))
    console.print(f"serving the current bundle of {os.environ[BUNDLES_DIR_ENV_VAR]}")
    uvicorn.run(
        "service.app:create_app", factory=True, host=args.host, port=args.port, log_level="info"
    )
    return 0


def command_query(config: GeoTripletConfig, args: argparse.Namespace) -> int:
    from geotriplet_assets.demo_query import QueryFailed, run_demo_query

    try:
        run_demo_query(config, image=args.image, k=args.k, url=args.url, console=console)
    except QueryFailed as exc:
        console.print(f"[red]query failed:[/red] {exc}")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geotriplet", description=__doc__)
    parser.add_argument(
        "--config",
        dest="config_path",
        type=Path,
        default=None,
        help=f"YAML config (default: ${CONFIG_ENV_VAR}, else the embedded demo config)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="generate a synthetic demo city")
    synth.add_argument("--out", help="output folder (default: the config's data.input_dir)")
    synth.add_argument("--preset", choices=["tiny", "demo"], help="size (default: synth.preset)")
    synth.add_argument("--seed", type=int, help="random seed (default: synth.seed)")
    synth.add_argument("--workers", type=int, default=2, help="generator processes")
    synth.set_defaults(handler=command_synth)

    materialize = commands.add_parser(
        "materialize", help="materialise the whole asset graph through Dagster"
    )
    materialize.set_defaults(handler=command_materialize)

    serve = commands.add_parser(
        "serve", help="start the retrieval service on the data root's current bundle"
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.set_defaults(handler=command_serve)

    query = commands.add_parser(
        "query",
        help="send one POST /similar with an image and print the request and the answer",
    )
    query.add_argument(
        "--image", type=Path, help="image file (default: a test-split image of the bundle)"
    )
    query.add_argument("--k", type=int, default=5, help="neighbours to ask for (default: 5)")
    query.add_argument(
        "--url",
        help="a running service (default: start one on the current bundle for this query)",
    )
    query.set_defaults(handler=command_query)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # a deprecation inside Lightning itself, printed on import; nothing a user can act on
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config_path)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    if args.config_path is not None:
        os.environ[CONFIG_ENV_VAR] = str(args.config_path.resolve())
        args.config_path = args.config_path.resolve()
    return args.handler(config, args)


if __name__ == "__main__":
    sys.exit(main())
