"""`geotriplet materialize`: failures named before any run; the tiny preset completes with
the default config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from geotriplet_assets.bundle.layout import read_current_version
from geotriplet_assets.bundle.load import load_bundle
from geotriplet_assets.catalogue.image_catalog import read_catalog
from geotriplet_assets.cli.main import main
from geotriplet_assets.features.embedding_store import read_embedding_shard
from geotriplet_assets.paths import ArtefactLayout
from tests.factories.cli_home import isolated_cli
from tests.factories.legacy_dataset import write_legacy_dataset
from tests.factories.tiny_city import TinyCityPipeline

MODEL = "tf_efficientnet_lite0"

pytestmark = pytest.mark.slow


def test_missing_input_folder_and_bad_config_fail_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "config.yaml"
    missing.write_text(f"data: {{root: {tmp_path}, input_dir: nowhere}}\n")
    assert main(["--config", str(missing), "materialize"]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("neighbours: {k: -3}\n")
    assert main(["--config", str(bad), "materialize"]) == 2
    assert "neighbours.k" in capsys.readouterr().err


def test_the_tiny_preset_with_the_default_config_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 10, item 8: the 100 m buffer leaves the tiny city one test target and no test
    # building with two views; the report says so instead of failing the run.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{root: {tmp_path / 'data'}, input_dir: city}}\n")
    assert main(["synth", "--preset", "tiny", "--workers", "1", "--config", str(config)]) == 0
    assert main(["materialize", "--config", str(config)]) == 0
    out = capsys.readouterr().err
    report = json.loads((tmp_path / "data" / "reports" / "retrieval_report.json").read_text())
    assert report["bundle_version"] in out
    if report["queries"] == 0:  # what the seeded tiny city gives today
        assert "through the bundle: nothing measured" in out
        assert report["recall_at"]["1"] is None


def test_a_data_root_that_cannot_be_written_is_named_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "city").mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{root: {blocker / 'data'}, input_dir: {tmp_path / 'city'}}}\n")
    assert main(["materialize", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "cannot be written" in err and "NotADirectoryError" in err
    assert "Traceback" not in err


def test_a_backbone_cache_that_cannot_be_used_is_named_with_its_setting(
    tiny_city_pipeline: TinyCityPipeline,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("GEOTRIPLET_CACHE_DIR", str(blocker / "cache"))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"data: {{root: {tmp_path / 'data'}, input_dir: {tiny_city_pipeline.city}}}\n"
    )
    with isolated_cli(tmp_path):
        assert main(["materialize", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"the backbone cache {blocker / 'cache'} cannot be used" in err
    assert "set embedding.cache_dir or GEOTRIPLET_CACHE_DIR" in err
    assert not list((tmp_path / "data").rglob("*.h5"))  # no shard, whole or partial


def _legacy_file_of(pipeline: TinyCityPipeline, path: Path, *, width: int | None = None) -> int:
    """The tiny city's own embeddings written as the original project's dataset.h5 (plus
    one row the original failed on, zero-filled); the number of rows."""
    images = read_catalog(pipeline.layout.catalog_dir).images.set_index("image_id")
    ids, vectors = [], []
    for shard_path in sorted(pipeline.layout.embeddings_dir(MODEL).glob("*.h5")):
        shard = read_embedding_shard(shard_path)
        ids += shard.image_ids
        vectors.append(shard.embeddings)
    embeddings = np.concatenate(vectors)
    if width is not None:
        embeddings = embeddings[:, :width]
    rows = images.loc[ids]
    files = [PurePosixPath(p) for p in rows["path"]]
    embeddings = np.concatenate([embeddings, np.zeros((1, embeddings.shape[1]), np.float32)])
    write_legacy_dataset(
        path,
        embeddings=embeddings,
        dataset_id=[*rows["dataset_id"], rows["dataset_id"].iloc[0]],
        target_id=[*rows["target_id"], 424242],
        lat=[*rows["lat"], rows["lat"].iloc[0]],
        lon=[*rows["lon"], rows["lon"].iloc[0]],
        splits={"train": sorted(set(rows["target_id"]))},
        patch_id=[*rows["patch_id"], 0],
        image_filename=[*(f.name for f in files), "failed.jpg"],
        subpath=[*(str(f.parent) for f in files), str(files[0].parent)],
    )
    return len(embeddings)


def _legacy_config(pipeline: TinyCityPipeline, root: Path, source: Path, photos: Path) -> Path:
    config = root / "config.yaml"
    config.write_text(
        pipeline.config_path.read_text().replace(
            f"data: {{root: {pipeline.root / 'data'}, input_dir: {pipeline.city},",
            f"data: {{root: {root / 'data'}, input_dir: {photos}, hdf5_path: {source},",
        )
    )
    assert str(source) in config.read_text()
    return config


@pytest.fixture
def own_home(tmp_path: Path) -> Iterator[None]:
    with isolated_cli(tmp_path):
        yield


@pytest.mark.usefixtures("own_home")
def test_a_dataset_h5_alone_goes_through_the_whole_graph_to_a_bundle(
    tiny_city_pipeline: TinyCityPipeline,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "dataset.h5"
    n_rows = _legacy_file_of(tiny_city_pipeline, source)
    config = _legacy_config(tiny_city_pipeline, tmp_path, source, tmp_path / "no-photos")
    layout = ArtefactLayout(tmp_path / "data")

    assert main(["--config", str(config), "materialize"]) == 0
    out = capsys.readouterr().err
    assert "projection head: test recall@1" in out and "search bundle" in out
    rejections = read_catalog(layout.catalog_dir).rejections
    assert rejections[["line", "reason"]].values.tolist() == [[n_rows - 1, "zero_embedding"]]
    bundle = load_bundle(layout.bundles_dir / str(read_current_version(layout.bundles_dir)))
    assert bundle.count == n_rows - 1
    assert bundle.images.path(0) is None  # no originals recorded: thumbnails and rerank say so
    # An image_id query finds another view of its building, from the file's vectors alone.
    report = json.loads(layout.retrieval_report_path.read_text())
    assert report["queries"] > 0 and report["upload_queries"] == 0
    assert report["recall_at"]["1"] > 0.5
    parity = json.loads(layout.parity_path.read_text())
    assert parity["inputs"].startswith("synthetic") and parity["max_abs_diff"] < 1e-3

    # The same file with its photos beside it: uploads through the configured backbone land
    # on the file's own vectors, because the file holds exactly that backbone's embeddings.
    config = _legacy_config(tiny_city_pipeline, tmp_path, source, tiny_city_pipeline.city)
    assert main(["--config", str(config), "materialize"]) == 0
    report = json.loads(layout.retrieval_report_path.read_text())
    assert report["upload_queries"] > 0 and report["upload_min_cosine"] > 0.999
    bundle = load_bundle(layout.bundles_dir / str(read_current_version(layout.bundles_dir)))
    assert bundle.images.path(0) is not None


@pytest.mark.usefixtures("own_home")
def test_a_dataset_h5_of_another_backbone_is_named(
    tiny_city_pipeline: TinyCityPipeline,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = tmp_path / "dataset.h5"
    _legacy_file_of(tiny_city_pipeline, source, width=768)
    config = _legacy_config(tiny_city_pipeline, tmp_path, source, tmp_path / "no-photos")

    assert main(["--config", str(config), "materialize"]) != 0
    err = capsys.readouterr().err
    assert "holds 768-d embeddings but model.backbone tf_efficientnet_lite0 produces 1280-d" in err
    (tmp_path / "dataset.h5").unlink()
    assert main(["--config", str(config), "materialize"]) == 1
    assert "data.hdf5_path" in capsys.readouterr().err
