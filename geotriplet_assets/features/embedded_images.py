"""The images that made it into the embedding shards, joined with their catalogue metadata."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from geotriplet_assets.features.embedding_store import read_embedding_shard

EMBEDDED_IMAGE_COLUMNS = ["image_id", "dataset_id", "target_id", "patch_id", "lat", "lon"]


class MissingShardError(FileNotFoundError):
    """A DatasetID of the catalogue has no embedding shard yet."""


def collect_embedded_images(
    catalog_images: pd.DataFrame, shard_paths: Mapping[int, Path]
) -> pd.DataFrame:
    """One row per embedded image: catalogue columns plus `shard_row`, its row in its shard.

    SHARD_PATHS maps every DatasetID of the catalogue to its shard.
    """
    frames = []
    for dataset_id in sorted(catalog_images["dataset_id"].unique()):
        path = shard_paths[int(dataset_id)]
        if not path.is_file():
            raise MissingShardError(
                f"no embedding shard for DatasetID {dataset_id} at {path}: materialise "
                f"backbone_embeddings partition {int(dataset_id):04d} first"
            )
        shard = read_embedding_shard(path, load_embeddings=False)
        frames.append(
            pd.DataFrame(
                {
                    "image_id": pd.Series(shard.image_ids, dtype=str),
                    "shard_row": np.arange(len(shard.image_ids), dtype=np.int64),
                }
            )
        )
    embedded = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(
            {"image_id": pd.Series(dtype=str), "shard_row": pd.Series(dtype=np.int64)}
        )
    )
    joined = embedded.merge(
        catalog_images[EMBEDDED_IMAGE_COLUMNS], on="image_id", how="left", validate="one_to_one"
    )
    unknown = joined["dataset_id"].isna()
    if unknown.any():
        sample = ", ".join(joined.loc[unknown, "image_id"].head(3))
        raise ValueError(
            f"{int(unknown.sum())} embedded images are not in the catalogue (e.g. {sample}); "
            "the shards are stale: materialise backbone_embeddings again"
        )
    return joined[[*EMBEDDED_IMAGE_COLUMNS, "shard_row"]].sort_values(
        "image_id", ignore_index=True
    )
