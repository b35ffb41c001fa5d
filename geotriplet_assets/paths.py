"""Where every artefact lives under the data root, and how each is written: under a temporary
name, renamed into place only when complete."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


def dataset_partition_key(dataset_id: int) -> str:
    """The Dagster partition key of a DatasetID: zero-padded like the real data's IDs."""
    return f"{int(dataset_id):04d}"


@dataclass(frozen=True)
class ArtefactLayout:
    root: Path

    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    @property
    def legacy_rows_path(self) -> Path:
        """Each image's row in the original project's dataset.h5 (when data.hdf5_path is set)."""
        return self.catalog_dir / "legacy_rows.parquet"

    def embeddings_dir(self, model_name: str) -> Path:
        return self.root / "embeddings" / model_name

    def embedding_shard(self, model_name: str, dataset_id: int) -> Path:
        return self.embeddings_dir(model_name) / f"{dataset_partition_key(dataset_id)}.h5"

    def training_matrix(self, model_name: str, split: str) -> Path:
        """One split's backbone embeddings as a float16 .npy matrix, memory-mapped by training."""
        return self.root / "training" / model_name / f"{split}.npy"

    @property
    def targets_dir(self) -> Path:
        return self.root / "targets"

    @property
    def targets_path(self) -> Path:
        return self.targets_dir / "targets.parquet"

    @property
    def embedded_images_path(self) -> Path:
        return self.targets_dir / "images.parquet"

    @property
    def splits_path(self) -> Path:
        return self.root / "splits" / "splits.parquet"

    @property
    def neighbours_path(self) -> Path:
        return self.root / "neighbours" / "geo_neighbours.h5"

    @property
    def optuna_dir(self) -> Path:
        return self.root / "optuna"

    @property
    def best_params_path(self) -> Path:
        return self.optuna_dir / "best_params.json"

    @property
    def wandb_dir(self) -> Path:
        return self.root / "wandb"

    @property
    def serving_dir(self) -> Path:
        return self.root / "serving"

    @property
    def serving_model_path(self) -> Path:
        return self.serving_dir / "model.onnx"

    @property
    def serving_info_path(self) -> Path:
        return self.serving_dir / "serving_model.json"

    @property
    def parity_path(self) -> Path:
        return self.serving_dir / "parity.json"

    @property
    def bundles_dir(self) -> Path:
        return self.root / "bundles"

    @property
    def retrieval_report_path(self) -> Path:
        return self.root / "reports" / "retrieval_report.json"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of PATH; on success it replaces PATH, on error it vanishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the pid alone can repeat across the hosts (or containers) that share a data root
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)


def read_parquet_artefact(path: Path, producer: str) -> pd.DataFrame:
    """Read a parquet artefact; a missing file names the asset that writes it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: materialise {producer} first")
    return pd.read_parquet(path)
