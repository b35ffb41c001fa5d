"""The retrieval_report asset on the tiny city's bundle."""

from __future__ import annotations

import json

import pytest

from geotriplet_assets.evaluation.retrieval_report import build_retrieval_report
from tests.factories.tiny_city import TinyCityPipeline, materialization_metadata

pytestmark = pytest.mark.slow


def test_the_retrieval_report_measures_the_bundle_as_the_service_answers(
    pipeline: TinyCityPipeline,
) -> None:
    report = json.loads(pipeline.layout.retrieval_report_path.read_text())
    metadata = materialization_metadata(pipeline.instance, "retrieval_report")
    assert metadata["bundle_version"] == report["bundle_version"]
    assert report["queries"] > 0
    recalls = [report["recall_at"][k] for k in ("1", "5", "10")]
    assert 0 < recalls[0] <= recalls[1] <= recalls[2] <= 1
    assert 0 < report["map_at_r"] <= 1
    near = [report["recall_at_radius"][k] for k in ("1", "5", "10")]
    assert report["recall_radius_m"] == 25.0
    assert 0 < near[0] <= near[1] <= near[2] <= 1
    assert metadata["recall_at_1_25m"] == near[0]
    assert report["median_error_m"] >= 0
    # the uploaded-image path (decode + ONNX model) lands on the indexed vectors
    assert report["upload_queries"] > 0
    assert report["upload_min_cosine"] > 0.999
    assert report["upload_top1_agreement"] >= 0.75


def test_the_report_measures_locate_against_the_top_hit(pipeline: TinyCityPipeline) -> None:
    report = json.loads(pipeline.layout.retrieval_report_path.read_text())
    locate, top1 = report["locate"], report["top1_location"]
    shares = ("within_25m", "within_100m", "within_1000m")
    for figures in (locate, top1):
        assert figures["median_error_m"] <= figures["p90_error_m"]
        assert 0 <= figures["within_25m"] <= figures["within_100m"] <= figures["within_1000m"] <= 1
    assert 0 <= locate["within_uncertainty"] <= 1 and 0 <= locate["mean_confidence"] <= 1
    metadata = materialization_metadata(pipeline.instance, "retrieval_report")
    assert metadata["locate_within_25m"] == locate["within_25m"]
    assert metadata["top1_median_error_m"] == top1["median_error_m"]
    assert all(share in locate for share in shares)


def test_a_capped_report_samples_the_test_queries_and_brackets_the_full_figures(
    pipeline: TinyCityPipeline,
) -> None:
    full = json.loads(pipeline.layout.retrieval_report_path.read_text())
    assert full["queries"] == full["eligible_queries"]  # the default cap is above the city
    cap = full["eligible_queries"] // 2
    sampled = build_retrieval_report(
        pipeline.layout.bundles_dir, image_paths={}, upload_queries=0, max_queries=cap, seed=1
    )
    assert (sampled.queries, sampled.eligible_queries) == (cap, full["eligible_queries"])
    assert sampled.skipped_single_image_buildings == full["skipped_single_image_buildings"]
    for name, value in (("recall@1", full["recall_at"]["1"]), ("map@r", full["map_at_r"])):
        low, high = sampled.intervals[name]
        assert low <= value <= high, name
    again = build_retrieval_report(
        pipeline.layout.bundles_dir, image_paths={}, upload_queries=0, max_queries=cap, seed=1
    )
    assert again.recall_at == sampled.recall_at
