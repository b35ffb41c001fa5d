"""Geometric re-ranking on the tiny city the real pipeline published: the originals' ORB
features re-order the best candidates, and the true building moves up more often than down."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.errors import OriginalUnavailable
from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.bundle.rerank import (
    INLIER_CAP,
    INLIER_WEIGHT,
    Reranker,
    combined_score,
    upload_features,
)
from geotriplet_assets.bundle.search import SearchQuery


@pytest.fixture(scope="module")
def bundle(tiny_city_bundle: Path) -> LoadedBundle:
    return load_bundle(tiny_city_bundle / (fmt.read_current_version(tiny_city_bundle) or ""))


def _hits(bundle: LoadedBundle, row: int, k: int = 10):
    query = SearchQuery(bundle.vector(row), k=k, exclude_rows=frozenset({row}))
    return bundle.search([query])[0]


def _has_partner(bundle: LoadedBundle, row: int) -> bool:
    return int((bundle.images.building_code == bundle.images.building_code[row]).sum()) > 1


def test_rerank_moves_the_true_building_up_more_often_than_down(bundle: LoadedBundle) -> None:
    reranker = Reranker(cache_bytes=64 * 1024 * 1024)
    rows = [row for row in range(bundle.count) if _has_partner(bundle, row)]
    up = down = 0
    for row in rows:
        hits = _hits(bundle, row)
        verified = reranker.rerank(bundle, reranker.row_features(bundle, row), hits, 10)
        before = hits[0].target_id == bundle.images.target_id[row]
        after = verified[0].neighbour.target_id == bundle.images.target_id[row]
        up += after and not before
        down += before and not after
        assert sorted(item.neighbour.row for item in verified) == sorted(h.row for h in hits)
        scores = [item.rerank_score for item in verified]
        assert scores == sorted(scores, reverse=True)
    assert up > down
    assert up >= 1


def test_only_the_top_candidates_are_verified_and_the_rest_keep_their_order(
    bundle: LoadedBundle,
) -> None:
    hits = _hits(bundle, 0, k=12)
    reranker = Reranker(cache_bytes=0)
    verified = reranker.rerank(bundle, reranker.row_features(bundle, 0), hits, 5)
    assert {item.neighbour.row for item in verified[:5]} == {hit.row for hit in hits[:5]}
    assert all(item.inliers is not None and item.inliers >= 0 for item in verified[:5])
    assert [item.neighbour for item in verified[5:]] == hits[5:]
    assert all(item.inliers is None and item.rerank_score is None for item in verified[5:])
    for item in verified[:5]:
        assert item.rerank_score == pytest.approx(
            item.neighbour.score + INLIER_WEIGHT * min(item.inliers, INLIER_CAP) / INLIER_CAP
        )


def test_an_upload_is_verified_from_its_bytes_like_the_indexed_original(
    bundle: LoadedBundle,
) -> None:
    data = bundle.original_path(3).read_bytes()
    from_upload = upload_features(bundle, data)
    from_original = Reranker(cache_bytes=0).row_features(bundle, 3)
    np.testing.assert_array_equal(from_upload.descriptors, from_original.descriptors)
    assert combined_score(0.5, 1000) == pytest.approx(0.5 + INLIER_WEIGHT)


def test_the_feature_cache_is_bounded_in_bytes(bundle: LoadedBundle) -> None:
    one = Reranker(cache_bytes=64 * 1024 * 1024).row_features(bundle, 0).nbytes
    reranker = Reranker(cache_bytes=2 * one + 1)
    for row in range(6):
        reranker.row_features(bundle, row)
    assert reranker.cached_bytes <= 2 * one + 1


def test_a_missing_original_is_unavailable_with_the_reason(
    bundle: LoadedBundle, tmp_path: Path
) -> None:
    elsewhere = replace(bundle, manifest=replace(bundle.manifest, images_root=tmp_path))
    with pytest.raises(OriginalUnavailable, match="not available here"):
        Reranker(cache_bytes=0).row_features(elsewhere, 0)
    unrecorded = replace(bundle, manifest=replace(bundle.manifest, images_root=None))
    assert not unrecorded.has_originals and bundle.has_originals
    with pytest.raises(OriginalUnavailable, match="does not record"):
        Reranker(cache_bytes=0).row_features(unrecorded, 0)
