from __future__ import annotations

import numpy as np
import pytest

from geotriplet_assets.bundle.geo_filter import LatitudeIndex
from geotriplet_assets.geodesy import great_circle_m


@pytest.mark.parametrize(
    ("lat", "lon", "radius_m"),
    [
        (50.88, 4.70, 2_000.0),  # a city
        (0.0, 179.99, 50_000.0),  # across the antimeridian
        (89.9, 10.0, 100_000.0),  # a cap that contains the pole
        (-45.0, -60.0, 3_000_000.0),  # wider than a latitude band's longitude window
        (10.0, 20.0, 30_000_000.0),  # the whole sphere
    ],
)
def test_rows_within_equal_an_exhaustive_scan(lat: float, lon: float, radius_m: float) -> None:
    rng = np.random.default_rng(7)
    # Points clustered around the centre (so many are near the circle) plus scattered ones.
    near_lat = np.clip(lat + rng.normal(0, np.degrees(radius_m / 6.371e6), 4000), -90, 90)
    near_lon = (lon + rng.normal(0, 2 * np.degrees(radius_m / 6.371e6), 4000) + 180) % 360 - 180
    lats = np.concatenate([near_lat, rng.uniform(-90, 90, 2000)])
    lons = np.concatenate([near_lon, rng.uniform(-180, 180, 2000)])
    expected = np.flatnonzero(great_circle_m(lats, lons, lat, lon) <= radius_m)
    found = LatitudeIndex(lats, lons).rows_within(lat, lon, radius_m)
    assert len(found) > 0
    np.testing.assert_array_equal(found, expected)


def test_a_point_exactly_at_the_centre_is_within_any_radius() -> None:
    index = LatitudeIndex(np.array([10.0, 10.001]), np.array([20.0, 20.0]))
    np.testing.assert_array_equal(index.rows_within(10.0, 20.0, 1e-3), [0])
