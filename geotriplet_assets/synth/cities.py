"""City regions of the synthetic dataset: one DatasetID per city, at real coordinates."""

from __future__ import annotations

import math
from dataclasses import dataclass

from geotriplet_assets.geodesy import EARTH_RADIUS_M


@dataclass(frozen=True)
class CitySpec:
    """A map region: centre, ground elevation and the bearing of its street grid."""

    name: str
    dataset_id: int
    lat: float
    lon: float
    elevation_m: float
    street_bearing_deg: float
    radius_m: float = 700.0

    def to_latlon(self, east_m: float, north_m: float) -> tuple[float, float]:
        """Latitude and longitude of a point given in metres east and north of the centre."""
        lat = self.lat + math.degrees(north_m / EARTH_RADIUS_M)
        lon = self.lon + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(self.lat))))
        return lat, lon


DEFAULT_CITIES: tuple[CitySpec, ...] = (
    CitySpec("Pittsburgh", 1, 40.441400, -79.997100, 230.0, 48.0),
    CitySpec("Manhattan", 2, 40.758000, -73.985500, 15.0, 29.0),
    CitySpec("Paris", 3, 48.856600, 2.352200, 35.0, 12.0),
    CitySpec("Amsterdam", 4, 52.372800, 4.893600, 2.0, 64.0),
    CitySpec("Florence", 5, 43.769600, 11.255800, 50.0, 21.0),
    CitySpec("Las Vegas", 6, 36.114700, -115.172800, 610.0, 0.0),
    CitySpec("Washington DC", 7, 38.897700, -77.036500, 20.0, 0.0),
    CitySpec("Chicago", 8, 41.878100, -87.629800, 180.0, 0.0),
)
