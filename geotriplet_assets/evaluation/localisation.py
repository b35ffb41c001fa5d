"""How well a bundle says where a photo was taken: `POST /locate`'s estimate against the top
hit's position, on held-out images queried as `image_id` queries are (their own row left out),
and the calibration of the estimate's confidence.

A query's error is the great-circle distance from the estimate to the image's recorded
position (`location_errors.ErrorSummary` summarises them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geotriplet_assets.bundle.load import LoadedBundle
from geotriplet_assets.bundle.locate import Calibration, locate
from geotriplet_assets.bundle.search import Neighbour, SearchQuery
from geotriplet_assets.evaluation.query_sample import sample_queries
from geotriplet_assets.geodesy import great_circle_m

QUERY_CHUNK = 256


@dataclass(frozen=True)
class Localisation:
    """Per query: the estimate's and the top hit's errors, raw confidence and uncertainty."""

    locate_errors_m: np.ndarray
    top1_errors_m: np.ndarray
    raw_confidence: np.ndarray
    uncertainty_m: np.ndarray

    @property
    def queries(self) -> int:
        return len(self.locate_errors_m)

    def within_uncertainty(self) -> np.ndarray:
        return self.locate_errors_m <= self.uncertainty_m

    def calibration(self) -> Calibration:
        return Calibration.fit(self.raw_confidence, self.within_uncertainty())


def held_out_rows(
    bundle: LoadedBundle, split: str, max_queries: int | None = None, seed: int = 0
) -> np.ndarray:
    """Rows of SPLIT whose building has another indexed view: the queries with an answer
    (at most MAX_QUERIES of them, a sample drawn with SEED)."""
    return sample_queries(eligible_rows(bundle, split), max_queries, seed)


def eligible_rows(bundle: LoadedBundle, split: str) -> np.ndarray:
    """Every row of SPLIT whose building has another indexed view."""
    building = bundle.images.building_code
    others = np.bincount(building)[building] - 1
    rows = np.flatnonzero(bundle.images.splits.to_numpy(zero_copy_only=False) == split)
    return rows[others[rows] > 0]


def search_rows(bundle: LoadedBundle, rows: np.ndarray, k: int) -> list[list[Neighbour]]:
    """The K best hits of each row's own vector, the row itself left out."""
    found: list[list[Neighbour]] = []
    for start in range(0, len(rows), QUERY_CHUNK):
        queries = [
            SearchQuery(vector=bundle.vector(int(row)), k=k, exclude_rows=frozenset({int(row)}))
            for row in rows[start : start + QUERY_CHUNK]
        ]
        found.extend(bundle.search(queries))
    return found


def localise(bundle: LoadedBundle, rows: np.ndarray, *, k: int | None = None) -> Localisation:
    """Locate each of ROWS (k hits each, the bundle's own k by default) without calibration."""
    params = bundle.manifest.locate
    hits = search_rows(bundle, rows, k or params.k)
    located = [locate(found, cluster_radius_m=params.cluster_radius_m) for found in hits]
    lat, lon = bundle.images.lat[rows], bundle.images.lon[rows]
    estimate_lat = np.array([place.lat for place in located if place is not None])
    estimate_lon = np.array([place.lon for place in located if place is not None])
    top_lat = np.array([found[0].lat for found in hits if found])
    top_lon = np.array([found[0].lon for found in hits if found])
    if len(estimate_lat) != len(rows):  # only with a bundle of one image
        raise ValueError("a held-out query found no hit")
    return Localisation(
        locate_errors_m=great_circle_m(lat, lon, estimate_lat, estimate_lon),
        top1_errors_m=great_circle_m(lat, lon, top_lat, top_lon),
        raw_confidence=np.array([place.raw_confidence for place in located if place]),
        uncertainty_m=np.array([place.uncertainty_m for place in located if place]),
    )
