"""End to end: a tiny city through every asset of the pipeline, via the CLI, on a real
Dagster instance under a temporary DAGSTER_HOME."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import h5py
import numpy as np
import optuna
import pandas as pd
import pytest

from geotriplet_assets.cli import main
from geotriplet_assets.core.embedding_store import SCHEMA_VERSION, read_embedding_shard
from geotriplet_assets.core.geo import great_circle_m
from tests.tiny_city import TinyCityPipeline

pytestmark = pytest.mark.slow

MODEL = "tf_efficientnet_lite0"


def _latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str | None = None):
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    if partition is not None:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]),
            limit=1,
        ).records
        event = records[0].event_log_entry
    assert event is not None, f"{asset} was never materialised"
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.fixture(scope="module")
def pipeline(tiny_city_pipeline: TinyCityPipeline) -> TinyCityPipeline:
    return tiny_city_pipeline


def test_catalogue_counts_images_and_reports_every_rejection(pipeline: TinyCityPipeline) -> None:
    metadata = _latest_metadata(pipeline.instance, "image_catalog")
    # the synthetic images plus the truncated and the tiny image, which parse fine
    assert metadata["images"] == pipeline.synth_images + 2
    rejections = pd.read_parquet(pipeline.layout.catalog_dir / "rejections.parquet")
    by_file = dict(
        zip(rejections["file"].str.split("/").str[-1], rejections["reason"], strict=True)
    )
    assert by_file["malformed.txt"] == "malformed_d_line"
    assert by_file["orphan.txt"] == "image_missing"
    assert metadata["rejected_files"] == len(rejections) == 2


def test_every_dataset_partition_has_a_complete_hdf5_shard(pipeline: TinyCityPipeline) -> None:
    catalog = pd.read_parquet(pipeline.layout.catalog_dir / "images.parquet")
    dataset_ids = sorted(catalog["dataset_id"].unique())
    partitions = pipeline.instance.get_materialized_partitions(dg.AssetKey("backbone_embeddings"))
    assert partitions == {f"{i:04d}" for i in dataset_ids}
    for dataset_id in dataset_ids:
        path = pipeline.layout.embedding_shard(MODEL, int(dataset_id))
        with h5py.File(path, "r") as shard:
            embeddings = shard["embeddings"][...]
            ids = [i.decode() if isinstance(i, bytes) else i for i in shard["image_ids"][...]]
            rejected = [
                i.decode() if isinstance(i, bytes) else i
                for i in shard["rejections/image_id"][...]
            ]
            attrs = dict(shard.attrs)
        expected = set(catalog.loc[catalog["dataset_id"] == dataset_id, "image_id"])
        assert set(ids) | set(rejected) == expected
        assert embeddings.shape == (len(ids), 1280)
        assert embeddings.dtype == np.float32
        assert np.isfinite(embeddings).all()
        assert (np.linalg.norm(embeddings, axis=1) > 0).all()
        assert attrs["model_name"] == MODEL
        assert attrs["schema_version"] == SCHEMA_VERSION
        assert len(attrs["weights_sha256"]) == 64
        preprocessing = json.loads(attrs["preprocessing"])
        assert list(preprocessing["mean"]) == [0.5, 0.5, 0.5]
        assert list(preprocessing["input_size"]) == [3, 224, 224]
        assert not list(path.parent.glob(".*tmp"))


def test_bad_images_are_rejected_with_their_reason_not_embedded(
    pipeline: TinyCityPipeline,
) -> None:
    catalog = pd.read_parquet(pipeline.layout.catalog_dir / "images.parquet")
    is_truncated = catalog["image_id"].str.endswith("truncated")
    dataset_id = int(catalog.loc[is_truncated, "dataset_id"].iloc[0])
    with h5py.File(pipeline.layout.embedding_shard(MODEL, dataset_id), "r") as shard:
        ids = [i.decode() for i in shard["rejections/image_id"][...]]
        reasons = [r.decode() for r in shard["rejections/reason"][...]]
    by_image = dict(zip([i.split("/")[-1] for i in ids], reasons, strict=True))
    assert by_image == {"truncated": "truncated", "tiny": "too_small"}
    metadata = _latest_metadata(
        pipeline.instance, "backbone_embeddings", partition=f"{dataset_id:04d}"
    )
    assert metadata["rejected"] == 2
    assert metadata["dim"] == 1280
    assert metadata["model"] == MODEL


def test_targets_splits_and_neighbours_are_consistent(pipeline: TinyCityPipeline) -> None:
    targets = pd.read_parquet(pipeline.layout.targets_path)
    splits = pd.read_parquet(pipeline.layout.splits_path)
    assert targets["target_index"].tolist() == list(range(len(targets)))
    assert set(splits["split"].astype(str)) <= {"train", "val", "test", "excluded"}
    assert (splits["split"] == "train").sum() > 0
    assert _latest_metadata(pipeline.instance, "targets")["targets"] == len(targets)
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


def test_the_projection_head_is_trained_evaluated_and_tracked(pipeline: TinyCityPipeline) -> None:
    metadata = _latest_metadata(pipeline.instance, "projection_head")
    head_path = Path(metadata["head_path"])
    assert head_path.is_file()
    metrics = json.loads((head_path.parent / "metrics.json").read_text())
    assert metrics["head"]["test"]["recall@1"] == pytest.approx(metadata["test_recall_at_1"])
    assert 0.0 <= metadata["test_recall_at_1"] <= 1.0
    assert 1 <= metadata["epochs_run"] <= 3
    assert metadata["params_source"] == "configuration"
    assert metadata["resumed"] is False
    assert "data:image/png;base64," in metadata["training_curve"]
    offline_runs = list((pipeline.root / "data").rglob("offline-run-*"))
    assert offline_runs, "no offline W&B run was recorded"
    search = _latest_metadata(pipeline.instance, "hyperparameter_search")
    assert search["enabled"] is False


def test_the_optuna_search_feeds_its_best_parameters_to_the_head(
    pipeline: TinyCityPipeline,
) -> None:
    from geotriplet_assets.definitions import build_definitions

    config_path = pipeline.root / "optuna.yaml"
    config_path.write_text(
        pipeline.config_path.read_text()
        + "optuna: {enabled: true, n_trials: 2, study_name: e2e}\n"
        + "logging: {checkpoint_dir: checkpoints-optuna}\n"
    )
    config_path.write_text(config_path.read_text().replace("max_epochs: 3", "max_epochs: 2"))
    definitions = build_definitions(str(config_path))
    result = dg.materialize(
        [*definitions.assets],
        selection=["hyperparameter_search", "projection_head"],
        instance=pipeline.instance,
        resources={"settings": definitions.resources["settings"]},
    )
    assert result.success
    search = _latest_metadata(pipeline.instance, "hyperparameter_search")
    assert search["enabled"] is True
    assert search["trials"] >= 2
    study = optuna.load_study(study_name="e2e", storage=search["storage"])
    assert len(study.trials) == search["trials"]
    head = _latest_metadata(pipeline.instance, "projection_head")
    assert head["params_source"] == "optuna study e2e"
    assert head["params"]["lr"] == pytest.approx(study.best_params["lr"])


def test_the_head_trains_on_a_dataset_h5_in_the_original_schema(
    pipeline: TinyCityPipeline,
) -> None:
    from geotriplet_assets.core.legacy_dataset import write_legacy_dataset
    from geotriplet_assets.definitions import build_definitions

    images = pd.read_parquet(pipeline.layout.embedded_images_path)
    embeddings = np.concatenate(
        [
            read_embedding_shard(pipeline.layout.embedding_shard(MODEL, int(i))).embeddings[
                images.loc[images["dataset_id"] == i, "shard_row"]
            ]
            for i in sorted(images["dataset_id"].unique())
        ]
    )
    images = images.sort_values(["dataset_id", "shard_row"], kind="stable")
    # the original split by TargetID alone, whatever the DatasetID
    target_ids = sorted(set(images["target_id"]))
    by_split = {
        "train": [t for t in target_ids if t % 5 < 3],
        "val": [t for t in target_ids if t % 5 == 3],
        "test": [t for t in target_ids if t % 5 == 4],
    }
    legacy = pipeline.root / "original" / "dataset.h5"
    legacy.parent.mkdir()
    write_legacy_dataset(
        legacy,
        embeddings=embeddings,
        dataset_id=images["dataset_id"],
        target_id=images["target_id"],
        lat=images["lat"],
        lon=images["lon"],
        splits=by_split,
    )
    config_path = pipeline.root / "legacy.yaml"
    config_path.write_text(
        pipeline.config_path.read_text().replace(
            "batch_size: 64", f"batch_size: 64, hdf5_path: {legacy}"
        )
        + "logging: {checkpoint_dir: checkpoints-legacy}\n"
    )
    definitions = build_definitions(str(config_path))
    result = dg.materialize(
        [*definitions.assets],
        selection=["projection_head"],
        instance=pipeline.instance,
        resources={"settings": definitions.resources["settings"]},
    )
    assert result.success
    head = _latest_metadata(pipeline.instance, "projection_head")
    assert head["data_source"] == f"legacy:{legacy}"
    assert 0.0 < head["test_recall_at_1"] <= 1.0


def test_rematerialising_unchanged_data_reuses_the_shards(pipeline: TinyCityPipeline) -> None:
    assert main(["--config", str(pipeline.config_path), "materialize"]) == 0
    catalog = pd.read_parquet(pipeline.layout.catalog_dir / "images.parquet")
    for dataset_id in catalog["dataset_id"].unique():
        metadata = _latest_metadata(
            pipeline.instance, "backbone_embeddings", partition=f"{int(dataset_id):04d}"
        )
        assert metadata["reused"] is True
    # same inputs: the head continues from its last checkpoint instead of starting over
    assert _latest_metadata(pipeline.instance, "projection_head")["resumed"] is True


def test_a_corrupted_shard_is_stopped_by_the_blocking_check(
    pipeline: TinyCityPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = pd.read_parquet(pipeline.layout.catalog_dir / "images.parquet")
    path = pipeline.layout.embedding_shard(MODEL, int(catalog["dataset_id"].iloc[0]))
    backup = path.read_bytes()
    try:
        with h5py.File(path, "r+") as shard:
            shard["embeddings"][0, :] = np.nan
        assert main(["--config", str(pipeline.config_path), "materialize"]) == 1
        assert "embeddings_finite_and_nonzero" in capsys.readouterr().err
    finally:
        path.write_bytes(backup)


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


def test_the_pipeline_publishes_a_verified_bundle_of_every_embedded_image(
    pipeline: TinyCityPipeline,
) -> None:
    from geotriplet_assets.core import bundle_format as fmt
    from service.bundle import check_bundle_files
    from service.manifest import read_manifest

    check = pipeline.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("serving_model"), "serving_model_matches_pytorch")]
    )
    execution = next(iter(check.values()))
    assert execution.status.value == "SUCCEEDED"
    bundles = pipeline.layout.bundles_dir
    version = fmt.read_current_version(bundles)
    assert version is not None
    manifest = read_manifest(bundles / version).raw
    check_bundle_files(bundles / version, read_manifest(bundles / version), verify_hashes=True)
    images = pd.read_parquet(pipeline.layout.embedded_images_path)
    indexed = pd.read_parquet(bundles / version / fmt.IMAGES)
    assert manifest["count"] == len(images) == len(indexed)
    assert set(indexed["image_id"]) == set(images["image_id"])
    assert set(indexed["split"]) <= {"train", "val", "test", "excluded"}
    assert manifest["index"]["type"] == "flat" and manifest["index"]["recall_at_10"] == 1.0
    assert 0 <= manifest["model"]["parity_max_abs_diff"] <= 1e-4
    vectors = np.load(bundles / version / fmt.VECTORS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    metadata = _latest_metadata(pipeline.instance, "search_index")
    assert metadata["bundle_version"] == version


def test_the_retrieval_report_measures_the_bundle_as_the_service_answers(
    pipeline: TinyCityPipeline,
) -> None:
    report = json.loads(pipeline.layout.retrieval_report_path.read_text())
    metadata = _latest_metadata(pipeline.instance, "retrieval_report")
    assert metadata["bundle_version"] == report["bundle_version"]
    assert report["queries"] > 0
    recalls = [report["recall_at"][k] for k in ("1", "5", "10")]
    assert 0 < recalls[0] <= recalls[1] <= recalls[2] <= 1
    assert 0 < report["map_at_r"] <= 1
    assert report["median_error_m"] >= 0
    # the uploaded-image path (decode + ONNX model) lands on the indexed vectors
    assert report["upload_queries"] > 0
    assert report["upload_min_cosine"] > 0.999
    assert report["upload_top1_agreement"] >= 0.75


def test_geotriplet_query_sends_one_real_post_similar(
    pipeline: TinyCityPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(pipeline.config_path), "query", "--k", "3"]) == 0
    out = capsys.readouterr().out
    assert "curl -s -F image=@" in out
    answer = json.loads(out[out.index("{") :])
    assert len(answer["neighbours"]) == 3
    assert set(answer["neighbours"][0]) == {
        "image_id",
        "dataset_id",
        "target_id",
        "lat",
        "lon",
        "score",
    }
    assert answer["neighbours"][0]["score"] > 0.99
