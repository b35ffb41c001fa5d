"""The tiny synthetic city run once through the whole pipeline, shared by the slow tests.

Tests that change its artefacts restore them; tests that need a bundle of their own copy it
(`tiny_city_bundle`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from PIL import Image

from geotriplet_assets.cli.main import main
from geotriplet_assets.paths import ArtefactLayout
from geotriplet_assets.synth import SynthConfig, generate_city
from tests.factories.cli_home import isolated_cli


@dataclass
class TinyCityPipeline:
    root: Path
    city: Path
    config_path: Path
    layout: ArtefactLayout
    instance: dg.DagsterInstance
    synth_images: int


def add_bad_inputs(city: Path) -> None:
    region = sorted(p for p in city.iterdir() if p.is_dir())[0]
    dataset_id = int(region.name)
    (region / "malformed.txt").write_text("d 1 2\n")
    (region / "malformed.jpg").write_bytes(b"")
    (region / "orphan.txt").write_text(f"d {dataset_id} 999 1\nc 40.0 -80.0\n")
    good_jpeg = sorted(region.glob("*.jpg"))[0].read_bytes()
    (region / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 2])
    (region / "truncated.txt").write_text(f"d {dataset_id} 998 1\nc 40.0 -80.0\n")
    Image.new("RGB", (8, 8)).save(region / "tiny.png")
    (region / "tiny.txt").write_text(f"d {dataset_id} 997 1\nc 40.0 -80.0\n")


def run_tiny_city_pipeline(root: Path) -> Iterator[TinyCityPipeline]:
    """Generate the city under ROOT, materialise everything via the CLI, yield the result."""
    city = root / "city"
    summary = generate_city(city, SynthConfig.tiny(targets_per_city=16))
    add_bad_inputs(city)
    config_path = root / "config.yaml"
    config_path.write_text(
        f"data: {{root: {root / 'data'}, input_dir: {city}, batch_size: 64}}\n"
        "embedding: {num_workers: 1, batch_size: 16}\n"
        "neighbours: {k: 5}\n"
        "splits: {buffer_m: 30.0}\n"
        "train: {max_epochs: 3, samples_per_epoch: 512}\n"
        "serving: {parity_images: 4, report_upload_queries: 8}\n"
    )
    with isolated_cli(root):
        assert main(["--config", str(config_path), "materialize"]) == 0
        yield TinyCityPipeline(
            root,
            city,
            config_path,
            ArtefactLayout(root / "data"),
            dg.DagsterInstance.get(),
            summary.images,
        )


def materialization_metadata(
    instance: dg.DagsterInstance,
    asset: str,
    partition: str | None = None,
    *,
    first: bool = False,
) -> dict:
    """The metadata of ASSET's latest materialisation (of PARTITION), or with FIRST of its
    first one: the run of `run_tiny_city_pipeline`, whatever tests ran since."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(asset),
            asset_partitions=None if partition is None else [partition],
        ),
        limit=1,
        ascending=first,
    ).records
    assert records, f"{asset} was never materialised"
    materialization = records[0].event_log_entry.asset_materialization
    return {k: v.value for k, v in materialization.metadata.items()}
