"""`geotriplet query` on the tiny city's bundle: one real POST /similar."""

from __future__ import annotations

import json

import pytest

from geotriplet_assets.cli.main import main
from tests.factories.tiny_city import TinyCityPipeline

pytestmark = pytest.mark.slow


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
        "inliers",
        "rerank_score",
    }
    assert answer["neighbours"][0]["inliers"] is None  # no rerank asked
    assert answer["neighbours"][0]["score"] > 0.99
