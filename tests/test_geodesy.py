import math

import numpy as np
import pytest

from geotriplet_assets.geodesy import (
    EARTH_RADIUS_M,
    CoordinateError,
    chord_to_metres,
    great_circle_m,
    latlon_from_unit_vectors,
    metres_to_chord,
    unit_vectors,
)

LONDON = (51.5074, -0.1278)
PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.0060)
LOS_ANGELES = (34.0522, -118.2437)
SYDNEY = (-33.8688, 151.2093)
SANTIAGO = (-33.4489, -70.6693)


def reference_haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((phi2 - phi1) / 2) ** 2
        + math.cos(phi1) * math.cos(phi2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h))


def law_of_cosines_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    cos_angle = math.sin(phi1) * math.sin(phi2) + math.cos(phi1) * math.cos(phi2) * math.cos(
        math.radians(lon2 - lon1)
    )
    return EARTH_RADIUS_M * math.acos(cos_angle)


@pytest.mark.parametrize(
    ("a", "b", "known_km"),
    [(LONDON, PARIS, 343.5), (NEW_YORK, LOS_ANGELES, 3936.0), (SYDNEY, SANTIAGO, 11340.0)],
)
def test_city_pairs_match_known_distances(a, b, known_km):
    metres = float(great_circle_m(*a, *b))
    assert metres / 1000 == pytest.approx(known_km, rel=0.005)
    assert metres == pytest.approx(reference_haversine_m(*a, *b), rel=1e-12)
    assert metres == pytest.approx(float(great_circle_m(*b, *a)), rel=1e-15)


def test_antimeridian_crossing_uses_the_short_way():
    # Santiago expressed east of Sydney (lon + 360) for an independent formula.
    shifted = law_of_cosines_m(*SYDNEY, SANTIAGO[0], SANTIAGO[1] + 360.0)
    assert float(great_circle_m(*SYDNEY, *SANTIAGO)) == pytest.approx(shifted, rel=1e-9)
    one_degree = 2 * math.pi * EARTH_RADIUS_M / 360
    assert float(great_circle_m(0.0, 179.5, 0.0, -179.5)) == pytest.approx(one_degree, rel=1e-12)
    assert float(great_circle_m(10.0, 180.0, 10.0, -180.0)) == pytest.approx(0.0, abs=1e-6)


def test_poles():
    assert float(great_circle_m(90, 0, -90, 0)) == pytest.approx(math.pi * EARTH_RADIUS_M)
    assert float(great_circle_m(90, 0, 90, 123)) == pytest.approx(0.0, abs=1e-6)
    assert float(great_circle_m(90, 0, 0, 45)) == pytest.approx(math.pi / 2 * EARTH_RADIUS_M)


def test_near_antipodes_and_identical_points_are_exact():
    assert float(great_circle_m(0, 0, 0, 180)) == pytest.approx(math.pi * EARTH_RADIUS_M)
    near = float(great_circle_m(0, 0, 0, 180 - 1e-7))
    assert near == pytest.approx(math.pi * EARTH_RADIUS_M - 1e-7 * math.pi / 180 * EARTH_RADIUS_M)
    assert float(great_circle_m(48.1, 11.5, 48.1, 11.5)) == 0.0


def test_broadcasting_one_point_against_many():
    lats = np.array([PARIS[0], NEW_YORK[0], SYDNEY[0]])
    lons = np.array([PARIS[1], NEW_YORK[1], SYDNEY[1]])
    distances = great_circle_m(LONDON[0], LONDON[1], lats, lons)
    assert distances.shape == (3,)
    expected = [reference_haversine_m(*LONDON, la, lo) for la, lo in zip(lats, lons, strict=True)]
    np.testing.assert_allclose(distances, expected, rtol=1e-12)


def test_unit_vectors_round_trip_and_norm():
    rng = np.random.default_rng(3)
    lat = np.concatenate([rng.uniform(-89.9, 89.9, 1000), [89.5, -89.5, 0.0]])
    lon = np.concatenate([rng.uniform(-179.9, 179.9, 1000), [180.0 - 1e-9, -180.0 + 1e-9, 0.0]])
    vectors = unit_vectors(lat, lon)
    assert vectors.shape == (1003, 3)
    assert vectors.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-15)
    lat_back, lon_back = latlon_from_unit_vectors(vectors)
    np.testing.assert_allclose(lat_back, lat, atol=1e-9)
    np.testing.assert_allclose(lon_back, lon, atol=1e-9)


def test_unit_vectors_of_known_points():
    np.testing.assert_allclose(unit_vectors([0, 0, 90], [0, 90, 0]), np.eye(3), atol=1e-15)


def test_latlon_from_vectors_normalises_and_rejects_zero():
    lat, _ = latlon_from_unit_vectors([[0.0, 0.0, 5.0]])
    assert lat[0] == 90.0
    with pytest.raises(CoordinateError, match="row 1"):
        latlon_from_unit_vectors([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(CoordinateError, match=r"\(N, 3\)"):
        latlon_from_unit_vectors([1.0, 0.0, 0.0])


def test_chord_and_metres_are_inverse_and_match_vectors():
    metres = np.array([0.0, 1.0, 25.0, 1e5, 1e7, math.pi * EARTH_RADIUS_M])
    np.testing.assert_allclose(chord_to_metres(metres_to_chord(metres)), metres, rtol=1e-12)
    a, b = unit_vectors(*LONDON), unit_vectors(*PARIS)
    chord = np.linalg.norm(a - b)
    assert float(chord_to_metres(chord)) == pytest.approx(float(great_circle_m(*LONDON, *PARIS)))
    assert float(metres_to_chord(1e9)) == 2.0
    assert float(chord_to_metres(2.0000001)) == pytest.approx(math.pi * EARTH_RADIUS_M)


@pytest.mark.parametrize(
    ("lat", "lon", "message"),
    [
        (90.5, 0.0, r"latitude .* 90\.5"),
        (-91.0, 0.0, r"latitude .* -91\.0"),
        (0.0, 180.01, r"longitude .* 180\.01"),
        (float("nan"), 0.0, "latitude .* nan"),
        (0.0, float("inf"), "longitude .* inf"),
    ],
)
def test_invalid_coordinates_are_named(lat, lon, message):
    with pytest.raises(CoordinateError, match=message):
        great_circle_m(lat, lon, 0.0, 0.0)
    with pytest.raises(ValueError, match=message):
        unit_vectors([0.0, lat], [0.0, lon])


def test_invalid_coordinate_reports_its_index():
    with pytest.raises(CoordinateError, match="at index 2"):
        unit_vectors([0.0, 1.0, 95.0], [0.0, 0.0, 0.0])


def test_negative_metres_rejected():
    with pytest.raises(ValueError, match=r"-3\.0"):
        metres_to_chord([1.0, -3.0])
