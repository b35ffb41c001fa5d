"""Reference answers: exhaustive scoring over every row, filters applied by definition."""

from __future__ import annotations

import numpy as np

from geotriplet_assets.bundle.load import LoadedBundle
from geotriplet_assets.bundle.search import SearchQuery, row_scores
from geotriplet_assets.geodesy import great_circle_m


def brute_force(bundle: LoadedBundle, query: SearchQuery) -> list[tuple[int, float]]:
    """(row, score) of the best k rows by exhaustive search, ties by ascending row."""
    vectors = np.asarray(bundle.vectors)
    scores = row_scores(vectors, query.vector)
    allowed = np.ones(bundle.count, dtype=bool)
    images = bundle.images
    if query.geo is not None:
        distance = great_circle_m(images.lat, images.lon, query.geo.lat, query.geo.lon)
        allowed &= distance <= query.geo.radius_m
    for row in query.exclude_rows:
        allowed[row] = False
    if query.exclude_building is not None:
        dataset_id, target_id = query.exclude_building
        allowed &= ~((images.dataset_id == dataset_id) & (images.target_id == target_id))
    rows = np.flatnonzero(allowed)
    order = rows[np.lexsort((rows, -scores[rows]))]
    hits: list[tuple[int, float]] = []
    seen: set[tuple[int, int]] = set()
    for row in order:
        building = images.building(int(row))
        if query.group_by_building:
            if building in seen:
                continue
            seen.add(building)
        hits.append((int(row), float(scores[row])))
        if len(hits) == query.k:
            break
    return hits
