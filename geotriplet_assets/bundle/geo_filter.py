"""Rows within a great-circle radius of a point, without measuring the distance to every row."""

from __future__ import annotations

import math

import numpy as np

from geotriplet_assets.geodesy import EARTH_RADIUS_M, great_circle_m

# Widens the latitude band and longitude window so that rounding never drops a row on the
# circle; the exact great-circle distance decides membership.
_MARGIN_DEG = 1e-7


class LatitudeIndex:
    """Rows sorted by latitude: a radius query binary-searches the latitude band, narrows it by
    the circle's longitude extent, then keeps the rows whose exact (haversine) distance is at
    most the radius.
    """

    def __init__(self, lat: np.ndarray, lon: np.ndarray) -> None:
        self._lat = lat
        self._lon = lon
        self._order = np.argsort(lat, kind="stable")
        self._sorted_lat = lat[self._order]

    def rows_within(self, lat: float, lon: float, radius_m: float) -> np.ndarray:
        """Rows (ascending) at great-circle distance <= RADIUS_M of (LAT, LON)."""
        angle = radius_m / EARTH_RADIUS_M
        if angle >= math.pi:
            candidates = np.arange(len(self._lat))
        else:
            half_band = math.degrees(angle) + _MARGIN_DEG
            lo = np.searchsorted(self._sorted_lat, lat - half_band, side="left")
            hi = np.searchsorted(self._sorted_lat, lat + half_band, side="right")
            candidates = self._order[lo:hi]
            if abs(lat) + half_band < 90.0:
                # Longitude half-width of a spherical cap that contains no pole.
                ratio = math.sin(angle) / math.cos(math.radians(lat))
                half_width = math.degrees(math.asin(min(1.0, ratio))) + _MARGIN_DEG
                delta = np.abs((self._lon[candidates] - lon + 180.0) % 360.0 - 180.0)
                candidates = candidates[delta <= half_width]
        distance = great_circle_m(self._lat[candidates], self._lon[candidates], lat, lon)
        return np.sort(candidates[distance <= radius_m])
