"""Per-split training data for the projection head, from the pipeline's artefacts.

Within a split, targets are numbered locally 0..n_targets-1 (the order of the
split's neighbour graph); `target_labels` maps them back to global target
indices, which serve as retrieval labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geotriplet_assets.geography.neighbour_store import SplitNeighbours, read_neighbours
from geotriplet_assets.geography.splits import SPLIT_NAMES
from geotriplet_assets.paths import ArtefactLayout, read_parquet_artefact
from geotriplet_assets.training.embedding_matrix import EmbeddingMatrixError, write_split_matrix


class TrainingDataError(ValueError):
    """Artefacts that do not fit together into training data."""


@dataclass(frozen=True)
class SplitData:
    """The images and targets of one split, with its neighbour graph in local indices."""

    embeddings: np.ndarray  # (n_images, D) float16, memory-mapped from the pipeline's artefacts
    image_ids: np.ndarray  # (n_images,) str
    image_target: np.ndarray  # (n_images,) int64 local target index
    target_labels: np.ndarray  # (n_targets,) int64 global target index
    image_lat: np.ndarray  # (n_images,) float64, the image's recorded position
    image_lon: np.ndarray
    target_lat: np.ndarray  # (n_targets,) float64
    target_lon: np.ndarray
    neighbours: np.ndarray  # (n_targets, k) int64 local target indices
    distances_m: np.ndarray  # (n_targets, k) float32

    @property
    def labels(self) -> np.ndarray:
        """Global target index of every image (the retrieval label)."""
        return self.target_labels[self.image_target]

    @property
    def n_targets(self) -> int:
        return len(self.target_labels)


@dataclass(frozen=True)
class TrainingData:
    train: SplitData
    val: SplitData
    test: SplitData
    dim: int
    source: str
    model_name: str

    def split(self, name: str) -> SplitData:
        if name not in SPLIT_NAMES:
            raise KeyError(f"no split {name!r}; splits are {SPLIT_NAMES}")
        return getattr(self, name)


def _local_index(global_index: np.ndarray, size: int) -> np.ndarray:
    """Lookup table global -> local (-1 where absent) for targets numbered below SIZE."""
    lookup = np.full(size, -1, dtype=np.int64)
    lookup[global_index] = np.arange(len(global_index), dtype=np.int64)
    return lookup


def _split_data(
    embeddings_of: Callable[[np.ndarray], np.ndarray],
    images: pd.DataFrame,
    image_global_target: np.ndarray,
    graph: SplitNeighbours,
    targets: pd.DataFrame,
    name: str,
) -> SplitData:
    """SplitData of the images whose target is in GRAPH; TARGETS is indexed by target_index;
    EMBEDDINGS_OF gives the float16 embeddings of the chosen rows of IMAGES."""
    size = int(max(image_global_target.max(initial=-1), graph.target_index.max(initial=-1))) + 1
    lookup = _local_index(graph.target_index, size)
    rows = np.flatnonzero(lookup[image_global_target] >= 0)
    local_neighbours = lookup[graph.neighbours] if graph.neighbours.size else graph.neighbours
    if (local_neighbours < 0).any():
        raise TrainingDataError(
            f"the {name} neighbour graph names targets outside the {name} split; "
            "materialise geo_neighbours again"
        )
    image_target = lookup[image_global_target[rows]]
    without_images = np.setdiff1d(np.arange(len(graph.target_index)), image_target)
    if without_images.size:
        raise TrainingDataError(
            f"{without_images.size} {name} targets have no embedded image (first: target "
            f"{graph.target_index[without_images[0]]}); the artefacts are out of date"
        )
    target_rows = targets.loc[graph.target_index]
    return SplitData(
        embeddings=embeddings_of(rows),
        image_ids=images["image_id"].to_numpy(dtype=str)[rows],
        image_target=image_target.astype(np.int64),
        target_labels=np.asarray(graph.target_index, dtype=np.int64),
        image_lat=images["lat"].to_numpy(dtype=np.float64)[rows],
        image_lon=images["lon"].to_numpy(dtype=np.float64)[rows],
        target_lat=target_rows["lat"].to_numpy(dtype=np.float64),
        target_lon=target_rows["lon"].to_numpy(dtype=np.float64),
        neighbours=np.asarray(local_neighbours, dtype=np.int64),
        distances_m=np.asarray(graph.distances_m, dtype=np.float32),
    )


def _check_graph_matches_splits(
    graphs: dict[str, SplitNeighbours], splits: pd.DataFrame, layout: ArtefactLayout
) -> None:
    for name in SPLIT_NAMES:
        if name not in graphs:
            raise TrainingDataError(f"{layout.neighbours_path} has no {name!r} group")
        expected = np.sort(splits.loc[splits["split"] == name, "target_index"].to_numpy())
        if not np.array_equal(np.sort(graphs[name].target_index), expected):
            raise TrainingDataError(
                f"the {name} targets of {layout.neighbours_path} differ from "
                f"{layout.splits_path}; materialise geo_neighbours again"
            )


def load_training_data(layout: ArtefactLayout, model_name: str) -> TrainingData:
    """Train/val/test data from the pipeline's artefacts; excluded targets are left out."""
    images = read_parquet_artefact(layout.embedded_images_path, "targets").reset_index(drop=True)
    splits = read_parquet_artefact(layout.splits_path, "dataset_splits")
    graphs = read_neighbours(layout.neighbours_path)
    _check_graph_matches_splits(graphs, splits, layout)
    targets = splits.set_index("target_index")[["lat", "lon"]]
    image_target = images["target_index"].to_numpy(dtype=np.int64)

    def matrix(name: str) -> Callable[[np.ndarray], np.ndarray]:
        path = layout.training_matrix(model_name, name)
        return lambda rows: write_split_matrix(path, layout, model_name, images.iloc[rows])

    try:
        parts = {
            name: _split_data(matrix(name), images, image_target, graphs[name], targets, name)
            for name in SPLIT_NAMES
        }
    except EmbeddingMatrixError as error:
        raise TrainingDataError(str(error)) from error
    return TrainingData(
        **parts,
        dim=int(parts["train"].embeddings.shape[1]),
        source=f"pipeline:{layout.root}",
        model_name=model_name,
    )
