"""The image_catalog asset on the tiny city, materialised through the CLI on a real instance."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.factories.tiny_city import TinyCityPipeline, materialization_metadata

pytestmark = pytest.mark.slow


def test_catalogue_counts_images_and_reports_every_rejection(pipeline: TinyCityPipeline) -> None:
    metadata = materialization_metadata(pipeline.instance, "image_catalog", first=True)
    # the synthetic images plus the truncated and the tiny image, which parse fine
    assert metadata["images"] == pipeline.synth_images + 2
    rejections = pd.read_parquet(pipeline.layout.catalog_dir / "rejections.parquet")
    by_file = dict(
        zip(rejections["file"].str.split("/").str[-1], rejections["reason"], strict=True)
    )
    assert by_file["malformed.txt"] == "malformed_d_line"
    assert by_file["orphan.txt"] == "image_missing"
    assert metadata["rejected_files"] == len(rejections) == 2
