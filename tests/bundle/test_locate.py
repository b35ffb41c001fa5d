"""Estimating where a photo was taken from its hits: the densest cluster, not the top hit;
uncertainty with a floor; a calibrated confidence."""

from __future__ import annotations

import numpy as np
import pytest

from geotriplet_assets.bundle.locate import (
    MIN_UNCERTAINTY_M,
    SCORE_TEMPERATURE,
    Calibration,
    estimate_positions,
    locate,
)
from geotriplet_assets.bundle.search import Neighbour
from geotriplet_assets.geodesy import EARTH_RADIUS_M, great_circle_m

METRE_DEG = np.degrees(1.0 / EARTH_RADIUS_M)


def _hit(row: int, lat: float, lon: float, score: float) -> Neighbour:
    return Neighbour(row, f"img{row}", 1, row, lat, lon, score)


def test_the_densest_cluster_wins_over_a_lone_top_hit() -> None:
    hits = [
        _hit(0, 10.0, 20.0, 0.95),  # the best hit, alone 5 km away
        _hit(1, 10.045, 20.0, 0.945),
        _hit(2, 10.045 + 20 * METRE_DEG, 20.0, 0.94),
        _hit(3, 10.045 - 20 * METRE_DEG, 20.0, 0.935),
        _hit(4, 12.0, 20.0, 0.70),  # far below the best: it weighs nothing
    ]
    place = locate(hits, cluster_radius_m=100.0)
    assert place is not None
    assert [hit.row for hit in place.support] == [1, 2, 3]
    assert great_circle_m(place.lat, place.lon, 10.045, 20.0) < 5.0
    assert MIN_UNCERTAINTY_M <= place.uncertainty_m < 60.0
    weights = np.exp((np.array([0.95, 0.945, 0.94, 0.935, 0.70]) - 0.95) / SCORE_TEMPERATURE)
    assert place.raw_confidence == pytest.approx(weights[1:4].sum() / weights.sum())
    assert place.calibrated is False and place.confidence == place.raw_confidence


def test_a_single_hit_gives_its_position_with_the_floor_uncertainty() -> None:
    place = locate([_hit(0, -33.9, 151.2, 0.7)])
    assert place is not None
    assert (place.lat, place.lon) == pytest.approx((-33.9, 151.2))
    assert place.uncertainty_m == MIN_UNCERTAINTY_M
    assert place.raw_confidence == 1.0
    assert locate([]) is None


def test_a_cluster_across_the_antimeridian_is_centred_on_it() -> None:
    hits = [_hit(0, 0.0, 180.0 - 10 * METRE_DEG, 0.9), _hit(1, 0.0, -180.0 + 10 * METRE_DEG, 0.9)]
    place = locate(hits)
    assert place is not None
    assert abs(abs(place.lon) - 180.0) < 1 * METRE_DEG


def test_a_batch_of_queries_is_estimated_as_each_query_alone() -> None:
    rng = np.random.default_rng(3)
    lat = 40.0 + rng.uniform(0, 2000, (6, 8)) * METRE_DEG
    lon = -80.0 + rng.uniform(0, 2000, (6, 8)) * METRE_DEG
    scores = np.sort(rng.uniform(0.6, 0.9, (6, 8)), axis=1)[:, ::-1]
    batch = estimate_positions(lat, lon, scores, cluster_radius_m=300.0)
    for q in range(6):
        hits = [_hit(i, lat[q, i], lon[q, i], scores[q, i]) for i in range(8)]
        alone = locate(hits, cluster_radius_m=300.0)
        assert alone is not None
        assert (batch.lat[q], batch.lon[q]) == pytest.approx((alone.lat, alone.lon))
        assert batch.uncertainty_m[q] == pytest.approx(alone.uncertainty_m)
        assert batch.raw_confidence[q] == pytest.approx(alone.raw_confidence)
        assert [hit.row for hit in alone.support] == list(np.flatnonzero(batch.members[q]))


def test_hits_of_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"share a \(Q, K >= 1\) shape"):
        estimate_positions(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        estimate_positions(np.zeros((2, 0)), np.zeros((2, 0)), np.zeros((2, 0)))


def test_calibration_is_non_decreasing_and_maps_raw_to_observed_shares() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 5000)
    within = rng.uniform(0, 1, 5000) < raw**2  # higher raw confidence, more often right
    within[(raw > 0.3) & (raw < 0.4)] = True  # a bump the monotone fit must pool away
    calibration = Calibration.fit(raw, within)
    assert list(calibration.hit_rate) == sorted(calibration.hit_rate)
    assert calibration(0.95) == pytest.approx(0.9, abs=0.06)
    assert calibration(0.0) <= calibration(0.5) <= calibration(1.0)
    again = Calibration.from_dict(calibration.as_dict())
    assert again == calibration
    place = locate([_hit(0, 1.0, 1.0, 0.5)], calibration=calibration)
    assert place is not None and place.calibrated and place.confidence == calibration(1.0)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"edges": [0, 0.5, 1], "hit_rate": [0.2], "queries": 3}, "one more than"),
        ({"edges": [0, 1], "hit_rate": [1.5], "queries": 3}, r"\[0, 1\]"),
    ],
)
def test_a_bad_calibration_is_refused(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Calibration.from_dict(values)
