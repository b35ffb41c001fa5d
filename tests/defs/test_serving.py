"""The serving_model and search_index assets on the tiny city: a verified bundle."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.manifest import check_bundle_files, read_manifest
from tests.factories.tiny_city import TinyCityPipeline, materialization_metadata

pytestmark = pytest.mark.slow


def test_the_pipeline_publishes_a_verified_bundle_of_every_embedded_image(
    pipeline: TinyCityPipeline,
) -> None:
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
    metadata = materialization_metadata(pipeline.instance, "search_index")
    assert metadata["bundle_version"] == version
