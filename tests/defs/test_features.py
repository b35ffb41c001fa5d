"""The backbone_embeddings partitions and their checks on the tiny city, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import h5py
import numpy as np
import pandas as pd
import pytest

from geotriplet_assets.cli.main import main
from geotriplet_assets.features.embedding_store import (
    SCHEMA_VERSION,
    content_sha256,
    read_embedding_shard,
    read_verified_shard,
)
from tests.factories.tiny_city import TinyCityPipeline, materialization_metadata

pytestmark = pytest.mark.slow

MODEL = "tf_efficientnet_lite0"


def test_every_dataset_partition_has_a_complete_hdf5_shard(pipeline: TinyCityPipeline) -> None:
    catalog = pd.read_parquet(pipeline.layout.catalog_dir / "images.parquet")
    dataset_ids = sorted(catalog["dataset_id"].unique())
    partitions = pipeline.instance.get_materialized_partitions(dg.AssetKey("backbone_embeddings"))
    assert partitions == {f"{i:04d}" for i in dataset_ids}
    # the features memory-mapped while embedding are removed once the shard is written
    assert not list(pipeline.layout.embeddings_dir(MODEL).glob(".*"))
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
    metadata = materialization_metadata(
        pipeline.instance, "backbone_embeddings", partition=f"{dataset_id:04d}", first=True
    )
    assert metadata["rejected"] == 2
    assert metadata["dim"] == 1280
    assert metadata["model"] == MODEL


def test_rematerialising_unchanged_data_reuses_the_shards(pipeline: TinyCityPipeline) -> None:
    before = materialization_metadata(pipeline.instance, "projection_head")
    assert main(["--config", str(pipeline.config_path), "materialize"]) == 0
    catalog = pd.read_parquet(pipeline.layout.catalog_dir / "images.parquet")
    for dataset_id in catalog["dataset_id"].unique():
        metadata = materialization_metadata(
            pipeline.instance, "backbone_embeddings", partition=f"{int(dataset_id):04d}"
        )
        assert metadata["reused"] is True
    # same inputs after a finished run: trained afresh, not on past its early stop, so the
    # figures are the first run's
    after = materialization_metadata(pipeline.instance, "projection_head")
    assert after["resumed"] is False
    for figure in ("test_recall_at_1", "test_map_at_r", "best_epoch"):
        assert after[figure] == before[figure], figure


def _reseal(path: Path) -> None:
    """Record the shard's current content as its checksum, as a buggy writer could."""
    shard = read_embedding_shard(path)
    with h5py.File(path, "r+") as handle:
        handle.attrs["content_sha256"] = content_sha256(
            shard.embeddings, shard.image_ids, shard.rejections
        )


def test_a_corrupted_shard_is_stopped_by_the_blocking_check(
    pipeline: TinyCityPipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    # A shard whose checksum matches its (bad) content is reused; the check stops it.
    catalog = pd.read_parquet(pipeline.layout.catalog_dir / "images.parquet")
    path = pipeline.layout.embedding_shard(MODEL, int(catalog["dataset_id"].iloc[0]))
    backup = path.read_bytes()
    try:
        with h5py.File(path, "r+") as shard:
            shard["embeddings"][0, :] = np.nan
        _reseal(path)
        assert main(["--config", str(pipeline.config_path), "materialize"]) == 1
        assert "embeddings_finite_and_nonzero" in capsys.readouterr().err
    finally:
        path.write_bytes(backup)


@pytest.mark.parametrize("damage", ["overwritten-row", "truncated", "leftover-temporary"])
def test_a_damaged_shard_is_embedded_again_and_says_why(
    pipeline: TinyCityPipeline, damage: str
) -> None:
    catalog = pd.read_parquet(pipeline.layout.catalog_dir / "images.parquet")
    dataset_id = int(catalog["dataset_id"].iloc[-1])
    path = pipeline.layout.embedding_shard(MODEL, dataset_id)
    original = read_embedding_shard(path)
    leftover = path.with_name(f".{path.name}.99999.tmp")
    if damage == "overwritten-row":
        with h5py.File(path, "r+") as shard:
            shard["embeddings"][0, :] = shard["embeddings"][1, :]
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        leftover.write_bytes(b"half a shard")
    assert main(["--config", str(pipeline.config_path), "materialize"]) == 0
    metadata = materialization_metadata(
        pipeline.instance, "backbone_embeddings", partition=f"{dataset_id:04d}"
    )
    assert not leftover.exists()
    if damage == "leftover-temporary":
        assert metadata["reused"] is True
    else:
        assert metadata["reused"] is False
        assert metadata["recomputed_because"].startswith(("EmbeddingShardError", "OSError"))
    again = read_verified_shard(path)
    assert again.image_ids == original.image_ids
    np.testing.assert_allclose(again.embeddings, original.embeddings, atol=1e-5)
