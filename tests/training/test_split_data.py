from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from geotriplet_assets.bundle.preprocessing import Preprocessing
from geotriplet_assets.features.embedding_store import write_embedding_shard
from geotriplet_assets.geodesy import great_circle_m, unit_vectors
from geotriplet_assets.geography.neighbour_store import SplitNeighbours, write_neighbours
from geotriplet_assets.geography.neighbours import exact_knn
from geotriplet_assets.geography.targets import build_targets, target_index_of_images
from geotriplet_assets.paths import ArtefactLayout, write_parquet_atomic
from geotriplet_assets.training import embedding_matrix
from geotriplet_assets.training.lightning_module import TripletHeadModule
from geotriplet_assets.training.params import HeadParams
from geotriplet_assets.training.split_data import (
    TrainingDataError,
    load_training_data,
)

MODEL = "tiny_backbone"
DIM = 8
K = 2
IDENTITY = {
    "model_name": MODEL,
    "weights_sha256": "ab" * 32,
    "preprocessing": Preprocessing(
        (3, 224, 224), "bicubic", (0.5,) * 3, (0.5,) * 3, 0.875, "center"
    ).to_json(),
    "engine": "onnx",
}
# Global target index -> split; targets 10 and 11 were excluded by the split buffer.
SPLIT_OF_TARGET = ["train"] * 5 + ["val"] * 3 + ["test"] * 2 + ["excluded"] * 2


def _images() -> pd.DataFrame:
    """12 targets in two datasets, 2 or 3 images each; TargetIDs repeat across datasets."""
    rows = []
    for number in range(12):
        dataset_id, target_id = 1 + number % 2, 100 + number // 2
        for patch in range(2 + number % 2):
            rows.append(
                {
                    "image_id": f"{dataset_id:04d}_{target_id}_{patch}",
                    "dataset_id": dataset_id,
                    "target_id": target_id,
                    "patch_id": patch,
                    "lat": 45.0 + 0.001 * number + 0.00001 * patch,
                    "lon": 7.0 + 0.0007 * (number % 3),
                }
            )
    return pd.DataFrame(rows)


def _vector_of(image_id: str) -> np.ndarray:
    """A distinct embedding per image, so every row can be traced back to its image."""
    seed = sum(ord(c) * 31**i for i, c in enumerate(image_id)) % 2**32
    return np.random.default_rng(seed).normal(size=DIM).astype(np.float32)


def write_pipeline_artefacts(root: Path) -> ArtefactLayout:
    """The artefacts of issue 2's assets for a tiny data set, shards in shuffled row order."""
    layout = ArtefactLayout(root)
    images = _images()
    targets = build_targets(images)
    images["target_index"] = target_index_of_images(images, targets)
    images["shard_row"] = -1
    rng = np.random.default_rng(0)
    for dataset_id, group in images.groupby("dataset_id"):
        order = rng.permutation(len(group))
        ids = group["image_id"].to_numpy()[order]
        images.loc[group.index[order], "shard_row"] = np.arange(len(group))
        write_embedding_shard(
            layout.embedding_shard(MODEL, int(dataset_id)),
            embeddings=np.stack([_vector_of(i) for i in ids]),
            image_ids=list(ids),
            rejections=pd.DataFrame(columns=["image_id", "reason", "detail"]),
            attrs=IDENTITY,
        )
    write_parquet_atomic(images, layout.embedded_images_path)
    splits = targets[["target_index", "dataset_id", "target_id", "lat", "lon"]].copy()
    splits["split"] = pd.Categorical(
        SPLIT_OF_TARGET, categories=["train", "val", "test", "excluded"]
    )
    write_parquet_atomic(splits, layout.splits_path)
    graphs = {}
    for name in ("train", "val", "test"):
        chosen = splits[splits["split"] == name]
        graph = exact_knn(unit_vectors(chosen["lat"], chosen["lon"]), K)
        graphs[name] = SplitNeighbours.from_graph(chosen["target_index"].to_numpy(), graph)
    write_neighbours(layout.neighbours_path, graphs, K)
    return layout


@pytest.fixture
def layout(tmp_path: Path) -> ArtefactLayout:
    return write_pipeline_artefacts(tmp_path)


def test_pipeline_artefacts_become_per_split_data_with_local_indices(
    layout: ArtefactLayout,
) -> None:
    data = load_training_data(layout, MODEL)
    images = pd.read_parquet(layout.embedded_images_path).set_index("image_id")
    assert (data.dim, data.model_name) == (DIM, MODEL)
    assert data.source == f"pipeline:{layout.root}"
    for name, expected_targets in (("train", 5), ("val", 3), ("test", 2)):
        split = data.split(name)
        assert split.n_targets == expected_targets
        assert {SPLIT_OF_TARGET[t] for t in split.target_labels} == {name}
        # Each image keeps its own embedding, label and recorded position.
        for row, image_id in enumerate(split.image_ids):
            np.testing.assert_array_equal(
                split.embeddings[row], _vector_of(image_id).astype(np.float16)
            )
            assert split.labels[row] == images.loc[image_id, "target_index"]
            assert split.image_lat[row] == images.loc[image_id, "lat"]
        assert split.embeddings.dtype == np.float16
        # Local neighbour indices name the same targets as the file's global ones.
        assert split.neighbours.min() >= 0
        assert split.neighbours.max() < split.n_targets
        assert split.neighbours.dtype == np.int64
        metres = great_circle_m(
            split.target_lat[:, None],
            split.target_lon[:, None],
            split.target_lat[split.neighbours],
            split.target_lon[split.neighbours],
        )
        np.testing.assert_allclose(metres, split.distances_m, rtol=1e-5)
    all_labels = np.concatenate([data.split(n).labels for n in ("train", "val", "test")])
    assert not np.isin([10, 11], all_labels).any(), "excluded targets are left out"
    kept = int((images["target_index"] < 10).sum())
    assert sum(len(data.split(n).image_ids) for n in ("train", "val", "test")) == kept


def test_a_stale_shard_is_reported_with_its_path(layout: ArtefactLayout) -> None:
    images = pd.read_parquet(layout.embedded_images_path)
    images.loc[images["dataset_id"] == 2, "shard_row"] = images.loc[
        images["dataset_id"] == 2, "shard_row"
    ].to_numpy()[::-1]
    write_parquet_atomic(images, layout.embedded_images_path)
    with pytest.raises(TrainingDataError, match=r"0002\.h5 row .* holds image"):
        load_training_data(layout, MODEL)


def test_a_neighbour_graph_of_other_splits_is_refused(layout: ArtefactLayout) -> None:
    splits = pd.read_parquet(layout.splits_path)
    splits["split"] = splits["split"].astype(str)
    splits.loc[splits["target_index"] == 7, "split"] = "test"
    write_parquet_atomic(splits, layout.splits_path)
    with pytest.raises(TrainingDataError, match=r"val targets of .* differ"):
        load_training_data(layout, MODEL)


def test_missing_artefacts_name_the_asset_to_materialise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="materialise targets"):
        load_training_data(ArtefactLayout(tmp_path), MODEL)


def test_training_reads_each_split_through_a_memory_map_of_its_own_matrix(
    layout: ArtefactLayout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedding_matrix, "BLOCK_ROWS", 2)  # rows cross shard blocks
    data = load_training_data(layout, MODEL)
    for name in ("train", "val", "test"):
        split = data.split(name)
        assert isinstance(split.embeddings, np.memmap)
        assert not split.embeddings.flags.writeable
        assert Path(split.embeddings.filename) == layout.training_matrix(MODEL, name)
        expected = np.stack([_vector_of(i) for i in split.image_ids]).astype(np.float16)
        np.testing.assert_array_equal(split.embeddings, expected)
    module = TripletHeadModule(data.train, data.val, HeadParams(embedding_size=4, hidden_size=8))
    # the module gathers rows from the maps: no tensor of it holds a split's matrix
    assert module.train_embeddings is data.train.embeddings
    assert all(buffer.shape != data.train.embeddings.shape for buffer in module.buffers())
    batch = module.draw_triplets(6)
    rows, outputs, position = module._embed_batch(
        {
            role: torch.from_numpy(getattr(batch, role))
            for role in ("anchor", "positive", "negative")
        }
    )
    assert outputs.shape == (len(rows), 4) and position.shape == (18,)
