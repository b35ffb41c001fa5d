"""The whole graph at a scale-shaped size: 20 000 cheap photos in 8 regions through the real
`geotriplet materialize`. Timings belong to benchmarks/bench_scale.py; this checks what must
hold at any size: the run completes, training reads each split through a memory map of an
on-disk matrix (never the images x D matrix in memory), and Dagster records a bounded
number of events and metadata, not one per image."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from geotriplet_assets.bundle.layout import read_current_version
from geotriplet_assets.bundle.load import load_bundle
from geotriplet_assets.catalogue.image_catalog import read_catalog
from geotriplet_assets.cli.main import main
from geotriplet_assets.paths import ArtefactLayout
from geotriplet_assets.synth.scale_city import generate_scale_city
from geotriplet_assets.training.split_data import load_training_data
from tests.factories.browser import skip_without_browser
from tests.factories.cli_home import isolated_cli
from tests.factories.dagster_ui import dagster_webserver, run_page_text

pytestmark = pytest.mark.slow

IMAGES = 20_000
MODEL = "tf_efficientnet_lite0"
MAX_EVENTS = IMAGES // 20  # per-image events would be at least IMAGES
MAX_METADATA_BYTES = 256 * 1024
ARTEFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artefacts"


@pytest.fixture(scope="module")
def scale_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtefactLayout, Path]:
    root = tmp_path_factory.mktemp("scale")
    generate_scale_city(root / "city", IMAGES, workers=2)
    config = root / "config.yaml"
    config.write_text(
        f"data: {{root: {root / 'data'}, input_dir: {root / 'city'}, image_size: 64}}\n"
        "embedding: {batch_size: 128}\n"
        "train: {max_epochs: 2, samples_per_epoch: 4096, eval_queries: 1000}\n"
        "serving: {parity_images: 4, report_upload_queries: 16, report_queries: 1000}\n"
    )
    with isolated_cli(root) as home:
        assert main(["--config", str(config), "materialize"]) == 0
    return ArtefactLayout(root / "data"), home


def test_every_photo_reaches_the_bundle(scale_run: tuple[ArtefactLayout, Path]) -> None:
    layout, _ = scale_run
    catalog = read_catalog(layout.catalog_dir)
    assert catalog.rejections.empty and len(catalog.images) >= IMAGES
    assert catalog.images["dataset_id"].nunique() == 8
    shards = sorted(layout.embeddings_dir(MODEL).glob("*.h5"))
    assert len(shards) == 8
    bundle = load_bundle(layout.bundles_dir / str(read_current_version(layout.bundles_dir)))
    assert bundle.count == len(catalog.images)
    report = json.loads(layout.retrieval_report_path.read_text())
    assert report["queries"] == 1000  # the seeded sample, not the whole split


def test_training_reads_memory_maps_of_on_disk_matrices(
    scale_run: tuple[ArtefactLayout, Path],
) -> None:
    layout, _ = scale_run
    data = load_training_data(layout, MODEL)
    total = 0
    for name in ("train", "val", "test"):
        split = data.split(name)
        assert isinstance(split.embeddings, np.memmap)
        assert Path(split.embeddings.filename) == layout.training_matrix(MODEL, name)
        assert split.embeddings.dtype == np.float16 and split.embeddings.shape[1] == 1280
        total += len(split.embeddings)
    assert total > IMAGES // 2


def test_dagster_records_no_event_per_image(scale_run: tuple[ArtefactLayout, Path]) -> None:
    _, home = scale_run
    instance = dg.DagsterInstance.from_config(str(home))
    runs = instance.get_run_records()
    events = [entry for run in runs for entry in instance.all_logs(run.dagster_run.run_id)]
    assert len(runs) == 10  # catalogue, 8 partitions, the rest
    assert len(events) < MAX_EVENTS
    for entry in events:
        materialization = entry.asset_materialization
        if materialization is not None:
            size = len(json.dumps({k: repr(v.value) for k, v in materialization.metadata.items()}))
            assert size < MAX_METADATA_BYTES, (materialization.asset_key, size)


def test_the_run_page_of_the_largest_run_opens(scale_run: tuple[ArtefactLayout, Path]) -> None:
    skip_without_browser()
    _, home = scale_run
    instance = dg.DagsterInstance.from_config(str(home))
    runs = instance.get_runs()
    largest = max(runs, key=lambda run: len(instance.all_logs(run.run_id)))
    screenshot = ARTEFACTS / "scale-run-page.png"
    with dagster_webserver(home) as url:
        text = run_page_text(url, largest.run_id, screenshot)
    assert largest.run_id[:8] in text
    assert "RUN_SUCCESS" in text and "STEP_SUCCESS" in text
    assert screenshot.stat().st_size > 10_000
