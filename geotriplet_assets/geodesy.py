"""Spherical Earth geometry: unit vectors, great-circle distances, chord conversions.

The Earth is modelled as a sphere of the IUGG mean radius; distances are
great-circle (haversine) distances on that sphere, never Euclidean on degrees.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius R1 = (2a + b) / 3 of WGS84, in metres (IUGG)."""


class CoordinateError(ValueError):
    """A latitude, longitude or vector that is not a valid position."""


def _first_bad(values: np.ndarray, bad: np.ndarray) -> str:
    """Describe the first flagged element of values, e.g. '91.0 at index 3'."""
    if values.ndim == 0:
        return repr(float(values))
    flat = int(np.flatnonzero(bad.ravel())[0])
    index = tuple(int(i) for i in np.unravel_index(flat, values.shape))
    position = index[0] if len(index) == 1 else index
    return f"{float(values.ravel()[flat])!r} at index {position}"


def validate_latlon(lat_deg: ArrayLike, lon_deg: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return lat, lon as float64 arrays; raise CoordinateError on a bad value."""
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    bad_lat = ~np.isfinite(lat) | (np.abs(lat) > 90.0)
    if bad_lat.any():
        raise CoordinateError(
            f"latitude must be finite and in [-90, 90], got {_first_bad(lat, bad_lat)}"
        )
    bad_lon = ~np.isfinite(lon) | (np.abs(lon) > 180.0)
    if bad_lon.any():
        raise CoordinateError(
            f"longitude must be finite and in [-180, 180], got {_first_bad(lon, bad_lon)}"
        )
    return lat, lon


def unit_vectors(lat_deg: ArrayLike, lon_deg: ArrayLike) -> np.ndarray:
    """Unit ECEF vectors (N, 3) float64 of positions on the sphere."""
    lat, lon = validate_latlon(lat_deg, lon_deg)
    lat, lon = (np.radians(a).ravel() for a in np.broadcast_arrays(lat, lon))
    cos_lat = np.cos(lat)
    return np.column_stack((cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)))


def latlon_from_unit_vectors(vectors: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in degrees of (N, 3) vectors (normalised first)."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise CoordinateError(f"vectors must have shape (N, 3), got {v.shape}")
    norms = np.linalg.norm(v, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0.0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise CoordinateError(f"vector {v[row].tolist()} at row {row} has no direction")
    x, y, z = (v / norms[:, None]).T
    lat = np.degrees(np.arctan2(z, np.hypot(x, y)))
    lon = np.degrees(np.arctan2(y, x))
    return lat, lon


def great_circle_m(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> np.ndarray:
    """Haversine great-circle distance in metres; arguments broadcast together."""
    phi1, lam1 = (np.radians(a) for a in validate_latlon(lat1, lon1))
    phi2, lam2 = (np.radians(a) for a in validate_latlon(lat2, lon2))
    h = (
        np.sin((phi2 - phi1) / 2.0) ** 2
        + np.cos(phi1) * np.cos(phi2) * np.sin((lam2 - lam1) / 2.0) ** 2
    )
    h = np.clip(h, 0.0, 1.0)
    # atan2 keeps full precision near antipodes, where arcsin(sqrt(h)) does not.
    return 2.0 * EARTH_RADIUS_M * np.arctan2(np.sqrt(h), np.sqrt(1.0 - h))


def chord_to_metres(chord: ArrayLike) -> np.ndarray:
    """Great-circle metres for chord lengths between unit vectors (clipped to [0, 2])."""
    c = np.clip(np.asarray(chord, dtype=np.float64), 0.0, 2.0)
    return 2.0 * EARTH_RADIUS_M * np.arcsin(c / 2.0)


def metres_to_chord(metres: ArrayLike) -> np.ndarray:
    """Unit-sphere chord length for great-circle metres; 2 (antipodal) at most."""
    m = np.asarray(metres, dtype=np.float64)
    bad = np.isnan(m) | (m < 0.0)
    if bad.any():
        raise ValueError(f"distance must be non-negative metres, got {_first_bad(m, bad)}")
    angle = np.minimum(m / EARTH_RADIUS_M, np.pi)
    return 2.0 * np.sin(angle / 2.0)
