import math

import numpy as np
import pytest

from geotriplet_assets.evaluation.query_sample import (
    mean_interval,
    sample_queries,
    wilson_interval,
)


def test_a_sample_is_seeded_sorted_and_without_repeats() -> None:
    candidates = np.arange(100, 200)
    sample = sample_queries(candidates, 30, seed=5)
    assert len(sample) == len(set(sample.tolist())) == 30
    assert np.all(np.diff(sample) > 0) and np.isin(sample, candidates).all()
    np.testing.assert_array_equal(sample, sample_queries(candidates, 30, seed=5))
    assert not np.array_equal(sample, sample_queries(candidates, 30, seed=6))


@pytest.mark.parametrize("cap", [None, 100, 1000])
def test_without_a_binding_cap_every_candidate_queries(cap: int | None) -> None:
    candidates = np.arange(100)
    np.testing.assert_array_equal(sample_queries(candidates, cap, seed=0), candidates)


def test_a_cap_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_queries"):
        sample_queries(np.arange(5), 0, seed=0)


def test_wilson_interval_matches_the_textbook_values() -> None:
    # 8 of 10: the Wilson 95 % interval is (0.490, 0.943)
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    assert wilson_interval(0, 50)[0] == 0.0 and wilson_interval(50, 50)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_mean_interval_is_the_normal_approximation() -> None:
    values = np.array([0.0, 1.0] * 50)
    low, high = mean_interval(values)
    half = 1.959963984540054 * np.std(values, ddof=1) / 10
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half))
    assert all(math.isnan(v) for v in mean_interval(np.array([1.0])))
