"""HDF5 storage of the per-split geographic neighbour graphs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from geotriplet_assets.geodesy import EARTH_RADIUS_M
from geotriplet_assets.geography.neighbours import NeighbourGraph
from geotriplet_assets.paths import atomic_path

NEIGHBOURS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class SplitNeighbours:
    """The k nearest targets of every target of one split, as global target indices."""

    target_index: np.ndarray  # (n,) int64
    neighbours: np.ndarray  # (n, k) int64 global target indices
    distances_m: np.ndarray  # (n, k) float32, ascending per row

    @classmethod
    def from_graph(cls, target_index: np.ndarray, graph: NeighbourGraph) -> SplitNeighbours:
        target_index = np.asarray(target_index, dtype=np.int64)
        return cls(target_index, target_index[graph.indices], graph.distances_m)


def write_neighbours(path: Path, splits: Mapping[str, SplitNeighbours], k: int) -> None:
    """Write every split's graph to PATH through a temporary file renamed when complete."""
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs.update(
            {
                "schema_version": NEIGHBOURS_SCHEMA_VERSION,
                "k": k,
                "metric": "great_circle_m",
                "earth_radius_m": EARTH_RADIUS_M,
            }
        )
        for name, split in splits.items():
            group = handle.create_group(name)
            group.create_dataset("target_index", data=split.target_index)
            group.create_dataset("neighbours", data=split.neighbours)
            group.create_dataset("distances_m", data=split.distances_m)


def read_neighbours(path: Path) -> dict[str, SplitNeighbours]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: materialise geo_neighbours first")
    with h5py.File(path, "r") as handle:
        version = handle.attrs.get("schema_version")
        if version != NEIGHBOURS_SCHEMA_VERSION:
            raise ValueError(
                f"{path} has neighbour schema {version!r}, expected "
                f"{NEIGHBOURS_SCHEMA_VERSION}; materialise geo_neighbours again"
            )
        return {
            name: SplitNeighbours(
                group["target_index"][...], group["neighbours"][...], group["distances_m"][...]
            )
            for name, group in handle.items()
        }
