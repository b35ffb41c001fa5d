"""A small structured retrieval problem that a projection head can learn.

Every image is its target's identity code (dims 0..SIGNAL_DIMS-1) plus a strong
"viewpoint" vector shared across targets (the other dims) and a little noise.
Raw nearest neighbours mostly share the viewpoint, not the target; a head that
learns to ignore the viewpoint dims retrieves the right target.
"""

from __future__ import annotations

import numpy as np

from geotriplet_assets.geodesy import unit_vectors
from geotriplet_assets.geography.neighbours import exact_knn
from geotriplet_assets.training.split_data import SplitData, TrainingData

DIM = 64
SIGNAL_DIMS = 32
VIEWS = 3
VIEW_SCALE = 2.0
NOISE = 0.3
ORIGIN_LAT, ORIGIN_LON = 45.0, 7.0
GRID_STEP_DEG = 0.001


def _split(
    rng: np.random.Generator,
    views: np.ndarray,
    first_label: int,
    n_targets: int,
    images_per_target: int,
    k: int,
) -> SplitData:
    codes = rng.normal(size=(n_targets, SIGNAL_DIMS))
    image_target = np.repeat(np.arange(n_targets), images_per_target)
    view_of_image = rng.integers(0, VIEWS, size=len(image_target))
    embeddings = np.zeros((len(image_target), DIM))
    embeddings[:, :SIGNAL_DIMS] = codes[image_target]
    embeddings[:, SIGNAL_DIMS:] = VIEW_SCALE * views[view_of_image]
    embeddings += NOISE * rng.normal(size=embeddings.shape)
    side = int(np.ceil(np.sqrt(n_targets)))
    rows, cols = np.divmod(np.arange(n_targets), side)
    target_lat = ORIGIN_LAT + first_label * GRID_STEP_DEG + rows * GRID_STEP_DEG
    target_lon = ORIGIN_LON + cols * GRID_STEP_DEG
    graph = exact_knn(unit_vectors(target_lat, target_lon), k)
    return SplitData(
        embeddings=embeddings.astype(np.float16),
        image_ids=np.array([f"img{first_label + t:05d}_{i}" for i, t in enumerate(image_target)]),
        image_target=image_target.astype(np.int64),
        target_labels=np.arange(first_label, first_label + n_targets, dtype=np.int64),
        image_lat=target_lat[image_target],
        image_lon=target_lon[image_target],
        target_lat=target_lat,
        target_lon=target_lon,
        neighbours=graph.indices.astype(np.int64),
        distances_m=graph.distances_m,
    )


def toy_training_data(
    n_train: int = 40,
    n_val: int = 20,
    n_test: int = 20,
    images_per_target: int = 3,
    k: int = 10,
    seed: int = 0,
) -> TrainingData:
    rng = np.random.default_rng(seed)
    views = rng.normal(size=(VIEWS, DIM - SIGNAL_DIMS))
    train = _split(rng, views, 0, n_train, images_per_target, k)
    val = _split(rng, views, n_train, n_val, images_per_target, k)
    test = _split(rng, views, n_train + n_val, n_test, images_per_target, k)
    return TrainingData(train, val, test, dim=DIM, source="toy", model_name="toy")
