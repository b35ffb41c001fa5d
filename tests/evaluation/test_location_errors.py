import math

import numpy as np
import pytest

from geotriplet_assets.evaluation.location_errors import WITHIN_M, ErrorSummary


def test_errors_are_summarised_by_median_p90_and_shares_within() -> None:
    errors = np.array([1.0, 20.0, 25.0, 80.0, 400.0, 999.0, 1000.0, 1001.0, 5000.0, 9e6])
    summary = ErrorSummary.of(errors)

    assert summary.median_m == pytest.approx((400.0 + 999.0) / 2)
    assert summary.p90_m == pytest.approx(np.percentile(errors, 90))
    # a threshold counts as within: 25 m is within 25 m
    assert summary.within == {25.0: 0.3, 100.0: 0.4, 1000.0: 0.7}
    assert summary.as_dict("locate_") == {
        "locate_median_error_m": summary.median_m,
        "locate_p90_error_m": summary.p90_m,
        "locate_within_25m": 0.3,
        "locate_within_100m": 0.4,
        "locate_within_1000m": 0.7,
    }


def test_no_errors_give_nan_everywhere() -> None:
    summary = ErrorSummary.of(np.zeros(0))

    assert math.isnan(summary.median_m) and math.isnan(summary.p90_m)
    assert list(summary.within) == list(WITHIN_M)
    assert all(math.isnan(share) for share in summary.within.values())
