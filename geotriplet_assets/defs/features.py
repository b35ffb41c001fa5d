"""Backbone embeddings: one HDF5 shard per DatasetID partition, and the checks that guard them."""

import functools
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from geotriplet_assets.bundle.preprocessing import DecodeLimits
from geotriplet_assets.catalogue.image_catalog import read_catalog
from geotriplet_assets.catalogue.legacy_catalog import SOURCE_ROW
from geotriplet_assets.catalogue.legacy_dataset import (
    LegacyDatasetError,
    read_legacy_embeddings,
)
from geotriplet_assets.config import GeoTripletConfig
from geotriplet_assets.defs.catalogue import image_catalog
from geotriplet_assets.defs.metadata import counts_table, file_size
from geotriplet_assets.defs.partitions import DATASET_PARTITIONS
from geotriplet_assets.defs.progress import StepLog, logged_progress
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.defs.slurm import run_step_on_slurm
from geotriplet_assets.features.backbone import BackboneSpec
from geotriplet_assets.features.embedder import Embedder
from geotriplet_assets.features.embedding_store import (
    EmbeddingShardError,
    read_embedding_shard,
    read_shard_attrs,
    read_verified_shard,
    shard_statistics,
    write_embedding_shard,
)
from geotriplet_assets.features.fingerprint import images_fingerprint
from geotriplet_assets.paths import ArtefactLayout, read_parquet_artefact
from geotriplet_assets.stage_settings import backbone_spec, decode_limits


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


def _backbone_cache(config: GeoTripletConfig) -> Path:
    """The backbone cache folder, created; a folder that cannot be is named with its setting."""
    cache = config.backbone_cache_dir
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if not os.access(cache, os.W_OK):
            raise PermissionError(f"{cache} is not writable")
    except OSError as error:
        raise dg.Failure(
            f"the backbone cache {cache} cannot be used ({type(error).__name__}: "
            f"{error.strerror or error}): set embedding.cache_dir or GEOTRIPLET_CACHE_DIR to a "
            "writable folder"
        ) from error
    return cache


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


@dataclass(frozen=True)
class _Shard:
    """A partition's shard as this materialisation left it."""

    path: Path
    embedded: int
    rejections: pd.DataFrame
    seconds: float
    engine: str
    device: str
    reused: bool


def _partition_images(layout: ArtefactLayout, partition: str) -> pd.DataFrame:
    catalog = read_catalog(layout.catalog_dir)
    images = catalog.images[catalog.images["dataset_id"] == int(partition)]
    if images.empty:
        raise dg.Failure(
            f"DatasetID {partition} has no catalogued images: its files were removed or all "
            "rejected; materialise image_catalog again"
        )
    return images


def _embed_shard(
    log: StepLog,
    partition: str,
    embedder: Embedder,
    images: pd.DataFrame,
    config: GeoTripletConfig,
    path: Path,
    attrs: dict[str, str | int],
) -> _Shard:
    paths = [config.input_dir / relative for relative in images["path"]]
    # The features go to a memory-mapped file beside the shard, not into anonymous memory;
    # its name is one _sweep_temporaries removes if this process is killed.
    features = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.features.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        run = embedder.embed_paths(
            paths,
            list(images["image_id"]),
            progress=logged_progress(
                f"embeddings {partition}",
                log.info,
                lambda done, total: f"embedded {done}/{total} images of DatasetID {partition}",
            ),
            features_path=features,
        )
        write_embedding_shard(
            path,
            embeddings=run.embeddings,
            image_ids=run.image_ids,
            rejections=run.rejections,
            attrs={
                **attrs,
                "weights_source": config.model.backbone_weights,
                "engine": run.engine,
                "device": run.device,
            },
        )
        shard = _Shard(
            path, len(run.image_ids), run.rejections, run.seconds, run.engine, run.device, False
        )
        del run  # releases the memory map before its file is removed
    finally:
        features.unlink(missing_ok=True)
    log.info(f"wrote {path}: {shard.embedded} of {len(images)} images embedded")
    return shard


def _legacy_shard(
    log: StepLog,
    embedder: Embedder,
    images: pd.DataFrame,
    config: GeoTripletConfig,
    layout: ArtefactLayout,
    path: Path,
    attrs: dict[str, str | int],
) -> _Shard:
    """The partition's rows of data.hdf5_path copied into a shard: the file's embeddings stand
    for the configured backbone's, so their width must be that backbone's."""
    assert config.data.hdf5_path
    source = config.resolve(config.data.hdf5_path)
    started = time.perf_counter()
    rows_of = read_parquet_artefact(layout.legacy_rows_path, "image_catalog").set_index(
        "image_id"
    )[SOURCE_ROW]
    ids = images["image_id"].to_numpy(dtype=str)
    missing = ~pd.Index(ids).isin(rows_of.index)
    if missing.any():
        raise dg.Failure(
            f"{layout.legacy_rows_path} has no row for {ids[missing][0]}: materialise "
            "image_catalog again"
        )
    rows = rows_of.loc[ids].to_numpy(dtype=np.int64)
    order = np.argsort(rows)
    try:
        embeddings = read_legacy_embeddings(source, rows[order])
    except LegacyDatasetError as error:
        raise dg.Failure(f"data.hdf5_path: {error}") from error
    if embeddings.shape[1] != embedder.dim:
        raise dg.Failure(
            f"{source} holds {embeddings.shape[1]}-d embeddings but model.backbone "
            f"{embedder.model_name} produces {embedder.dim}-d features: set model.backbone to "
            "the model the file was made with (uploaded photos are embedded by it)"
        )
    rejections = pd.DataFrame(columns=["image_id", "reason", "detail"])
    write_embedding_shard(
        path,
        embeddings=embeddings,
        image_ids=list(ids[order]),
        rejections=rejections,
        attrs={**attrs, "weights_source": f"legacy:{source}", "engine": "dataset.h5"},
    )
    log.info(f"wrote {path}: {len(ids)} embeddings copied from {source}")
    seconds = time.perf_counter() - started
    return _Shard(path, len(embeddings), rejections, seconds, "dataset.h5", "none", False)


def _reusable_shard(log: StepLog, path: Path, fingerprint: str) -> tuple[_Shard | None, str]:
    """The shard at PATH if it holds these inputs' embeddings intact; else None and, when a
    shard was there but could not be trusted, why (it is then recomputed, with a warning)."""
    if not path.is_file():
        return None, ""
    try:
        if read_shard_attrs(path).get("fingerprint") != fingerprint:
            return None, ""
        stored = read_verified_shard(path, load_embeddings=False)
    except (EmbeddingShardError, OSError, KeyError) as error:
        problem = f"{type(error).__name__}: {error}"
        log.warning(f"{path} cannot be reused ({problem}); embedding again")
        return None, problem
    log.info(f"{path} is up to date (fingerprint {fingerprint[:12]}); reused")
    engine = str(stored.attrs.get("engine"))
    embedded = len(stored.image_ids)
    return _Shard(path, embedded, stored.rejections, 0.0, engine, "reused", True), ""


def _sweep_temporaries(log: StepLog, path: Path) -> None:
    """Remove what a killed write of this partition's shard left (`.<name>.<pid>.tmp`);
    only this partition's run writes that shard."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        leftover.unlink(missing_ok=True)
        log.warning(f"removed {leftover}, left by an interrupted write")


@dg.asset(
    partitions_def=DATASET_PARTITIONS,
    deps=[image_catalog],
    group_name="features",
    kinds={"pytorch", "onnx", "hdf5"},
    description=(
        "Precomputed timm backbone embeddings of one DatasetID (one HDF5 shard per partition, "
        "written to a temporary file and renamed when complete), or that DatasetID's rows of "
        "data.hdf5_path when it names the original project's dataset.h5. Undecodable, truncated, "
        "non-image, too-small and over-large images are rejected with their reason. A shard "
        "whose images, model, weights and preprocessing are unchanged is reused."
    ),
)
def backbone_embeddings(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config = settings.config
    if config.compute.mode == "slurm":
        return run_step_on_slurm(context, config, settings.config_path, "backbone_embeddings")
    return dg.MaterializeResult(
        metadata=embed_partition(config, settings.layout, context.partition_key, context.log)
    )


def embed_partition(
    config: GeoTripletConfig, layout: ArtefactLayout, partition: str, log: StepLog
) -> dict[str, object]:
    """Write (or reuse) DatasetID PARTITION's shard; its materialisation metadata. The step's
    work wherever it runs: the Dagster step's process, or a SLURM job (defs.slurm_job)."""
    dataset_id = int(partition)
    images = _partition_images(layout, partition)
    embedder = create_embedder(config, _backbone_cache(config))
    identity = {
        "model_name": embedder.model_name,
        "weights_sha256": embedder.weights_sha256,
        "preprocessing": embedder.preprocessing.to_json(),
        "min_side": config.embedding.min_side,
        "max_pixels": config.embedding.max_pixels,
    }
    if config.data.hdf5_path:
        identity["source"] = str(config.resolve(config.data.hdf5_path))
    fingerprint = images_fingerprint(images, identity)
    path = layout.embedding_shard(embedder.model_name, dataset_id)
    _sweep_temporaries(log, path)
    shard, problem = _reusable_shard(log, path, fingerprint)
    if shard is None:
        attrs = {**identity, "dataset_id": dataset_id, "fingerprint": fingerprint}
        if config.data.hdf5_path:
            shard = _legacy_shard(log, embedder, images, config, layout, path, attrs)
        else:
            shard = _embed_shard(log, partition, embedder, images, config, path, attrs)
    metadata = _shard_metadata(shard, images, embedder, partition, fingerprint)
    if problem:
        metadata["recomputed_because"] = problem
    return metadata


def _shard_metadata(
    shard: _Shard, images: pd.DataFrame, embedder: Embedder, partition: str, fingerprint: str
) -> dict[str, object]:
    rejections = shard.rejections
    statistics = shard_statistics(shard.path)
    reasons = rejections["reason"].value_counts().to_dict() if len(rejections) else {}
    return {
        "path": dg.MetadataValue.path(str(shard.path)),
        "dataset_id": partition,
        "images": len(images),
        "embedded": shard.embedded,
        "rejected": len(rejections),
        "rejections_by_reason": counts_table(
            {str(k): int(v) for k, v in reasons.items()}, "reason"
        ),
        "dim": embedder.dim,
        "model": embedder.model_name,
        "weights_sha256": embedder.weights_sha256,
        "engine": shard.engine,
        "device": shard.device,
        "seconds": round(shard.seconds, 2),
        "images_per_s": round(len(images) / shard.seconds, 1) if shard.seconds > 0 else 0.0,
        "reused": shard.reused,
        "fingerprint": fingerprint,
        "size_bytes": file_size(shard.path),
        "mean_norm": statistics.mean_norm,
        "dagster/row_count": shard.embedded,
    }


def _partition_shard_path(
    context: dg.AssetCheckExecutionContext, settings: GeoTripletSettings
) -> tuple[int, Path]:
    dataset_id = int(context.op_execution_context.partition_key)
    return dataset_id, settings.layout.embedding_shard(settings.config.model.backbone, dataset_id)


@dg.asset_check(
    asset=backbone_embeddings,
    blocking=True,
    description="Every embedding is finite and has a non-zero norm (no zero-filled failures).",
)
def embeddings_finite_and_nonzero(
    context: dg.AssetCheckExecutionContext, settings: GeoTripletSettings
) -> dg.AssetCheckResult:
    dataset_id, path = _partition_shard_path(context, settings)
    statistics = shard_statistics(path)
    return dg.AssetCheckResult(
        passed=statistics.non_finite_rows == 0
        and statistics.zero_rows == 0
        and statistics.rows > 0,
        metadata={
            "dataset_id": dataset_id,
            "rows": statistics.rows,
            "non_finite_rows": statistics.non_finite_rows,
            "zero_rows": statistics.zero_rows,
            "min_norm": statistics.min_norm,
        },
    )


@dg.asset_check(
    asset=backbone_embeddings,
    blocking=True,
    description="Every catalogued image of the partition is either embedded or rejected with "
    "a reason, never both, and nothing else is in the shard.",
)
def every_image_accounted_for(
    context: dg.AssetCheckExecutionContext, settings: GeoTripletSettings
) -> dg.AssetCheckResult:
    dataset_id, path = _partition_shard_path(context, settings)
    shard = read_embedding_shard(path, load_embeddings=False)
    catalog = read_catalog(settings.layout.catalog_dir)
    expected = set(catalog.images.loc[catalog.images["dataset_id"] == dataset_id, "image_id"])
    embedded = set(shard.image_ids)
    rejected = set(shard.rejections["image_id"])
    missing = expected - embedded - rejected
    both = embedded & rejected
    unexpected = (embedded | rejected) - expected
    return dg.AssetCheckResult(
        passed=not (missing or both or unexpected),
        metadata={
            "catalogued": len(expected),
            "embedded": len(embedded),
            "rejected": len(rejected),
            "missing": len(missing),
            "embedded_and_rejected": len(both),
            "not_in_catalogue": len(unexpected),
            "examples": dg.MetadataValue.json(sorted(missing | both | unexpected)[:10]),
        },
    )
