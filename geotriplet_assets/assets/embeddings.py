"""Backbone embeddings: one HDF5 shard per DatasetID partition."""

import functools
import time
from pathlib import Path

import dagster as dg
import numpy as np

from geotriplet_assets.assets.catalog import image_catalog
from geotriplet_assets.core.backbone import BackboneSpec
from geotriplet_assets.core.catalog import read_catalog
from geotriplet_assets.core.config import GeoTripletConfig
from geotriplet_assets.core.embedder import Embedder
from geotriplet_assets.core.embedding_store import (
    read_embedding_shard,
    read_shard_attrs,
    write_embedding_shard,
)
from geotriplet_assets.core.fingerprint import images_fingerprint
from geotriplet_assets.core.image_decode import DecodeLimits
from geotriplet_assets.core.model_config import backbone_spec, decode_limits
from geotriplet_assets.dagster_metadata import counts_table, file_size
from geotriplet_assets.partitions import DATASET_PARTITIONS
from geotriplet_assets.progress import report_progress
from geotriplet_assets.resources import GeoTripletSettings


@functools.lru_cache(maxsize=2)
def _load_embedder(
    spec: BackboneSpec,
    engine: str,
    device: str,
    cache_dir: Path,
    batch_size: int,
    num_workers: int,
    limits: DecodeLimits,
) -> Embedder:
    """Partitions materialised in one process (the CLI) share one loaded model."""
    return Embedder.create(
        spec,
        engine=engine,
        device=device,
        cache_dir=cache_dir,
        batch_size=batch_size,
        num_workers=num_workers,
        limits=limits,
    )


def create_embedder(config: GeoTripletConfig, cache_dir: Path) -> Embedder:
    embedder = _load_embedder(
        backbone_spec(config),
        config.embedding.engine,
        config.embedding.device,
        cache_dir,
        config.embedding.batch_size,
        config.embedding.num_workers,
        decode_limits(config),
    )
    expected_dim = config.model.backbone_output_size
    if expected_dim is not None and expected_dim != embedder.dim:
        raise dg.Failure(
            f"model.backbone_output_size is {expected_dim} but {config.model.backbone} "
            f"produces {embedder.dim}-d features; fix or remove the key"
        )
    return embedder


@dg.asset(
    partitions_def=DATASET_PARTITIONS,
    deps=[image_catalog],
    group_name="features",
    kinds={"pytorch", "onnx", "hdf5"},
    description=(
        "Precomputed timm backbone embeddings of one DatasetID (one HDF5 shard per partition, "
        "written to a temporary file and renamed when complete). Undecodable, truncated, "
        "non-image, too-small and over-large images are rejected with their reason. A shard "
        "whose images, model, weights and preprocessing are unchanged is reused."
    ),
)
def backbone_embeddings(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config = settings.load()
    layout = settings.layout()
    partition = context.partition_key
    dataset_id = int(partition)
    catalog = read_catalog(layout.catalog_dir)
    images = catalog.images[catalog.images["dataset_id"] == dataset_id]
    if images.empty:
        raise dg.Failure(
            f"DatasetID {partition} has no catalogued images: its files were removed or all "
            "rejected; materialise image_catalog again"
        )

    embedder = create_embedder(config, layout.model_cache_dir)
    identity = {
        "model_name": embedder.model_name,
        "weights_sha256": embedder.weights_sha256,
        "preprocessing": embedder.preprocessing.to_json(),
        "min_side": config.embedding.min_side,
        "max_pixels": config.embedding.max_pixels,
    }
    fingerprint = images_fingerprint(images, identity)
    shard_path = layout.embedding_shard(embedder.model_name, dataset_id)

    reused = (
        shard_path.is_file() and read_shard_attrs(shard_path).get("fingerprint") == fingerprint
    )
    if reused:
        context.log.info(f"{shard_path} is up to date (fingerprint {fingerprint[:12]}); reused")
        shard = read_embedding_shard(shard_path)
        embeddings, rejections = shard.embeddings, shard.rejections
        seconds, engine, device = 0.0, str(shard.attrs.get("engine")), "reused"
    else:
        total = len(images)
        last_logged = [time.monotonic()]

        def on_progress(done: int, total_: int) -> None:
            report_progress(f"embeddings {partition}", done, total_)
            now = time.monotonic()
            if now - last_logged[0] > 10 or done == total_:
                last_logged[0] = now
                context.log.info(f"embedded {done}/{total_} images of DatasetID {partition}")

        paths = [config.input_dir / path for path in images["path"]]
        run = embedder.embed_paths(paths, list(images["image_id"]), progress=on_progress)
        write_embedding_shard(
            shard_path,
            embeddings=run.embeddings,
            image_ids=run.image_ids,
            rejections=run.rejections,
            attrs={
                **identity,
                "dataset_id": dataset_id,
                "fingerprint": fingerprint,
                "weights_source": config.model.backbone_weights,
                "engine": run.engine,
                "device": run.device,
            },
        )
        embeddings, rejections = run.embeddings, run.rejections
        seconds, engine, device = run.seconds, run.engine, run.device
        context.log.info(f"wrote {shard_path}: {len(run.image_ids)} of {total} images embedded")

    norms = np.linalg.norm(embeddings, axis=1) if len(embeddings) else np.zeros(0)
    reasons = rejections["reason"].value_counts().to_dict() if len(rejections) else {}
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(shard_path)),
            "dataset_id": partition,
            "images": len(images),
            "embedded": len(embeddings),
            "rejected": len(rejections),
            "rejections_by_reason": counts_table(
                {str(k): int(v) for k, v in reasons.items()}, "reason"
            ),
            "dim": embedder.dim,
            "model": embedder.model_name,
            "weights_sha256": embedder.weights_sha256,
            "engine": engine,
            "device": device,
            "seconds": round(seconds, 2),
            "images_per_s": round(len(images) / seconds, 1) if seconds > 0 else 0.0,
            "reused": reused,
            "fingerprint": fingerprint,
            "size_bytes": file_size(shard_path),
            "mean_norm": float(norms.mean()) if len(norms) else 0.0,
            "dagster/row_count": len(embeddings),
        }
    )
