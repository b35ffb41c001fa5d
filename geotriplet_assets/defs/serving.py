"""The serving side: the exported serving model, checked against PyTorch, and the published
search bundle."""

import json
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from geotriplet_assets.bundle.checksums import file_sha256
from geotriplet_assets.bundle.preprocessing import Preprocessing
from geotriplet_assets.catalogue.image_catalog import read_catalog
from geotriplet_assets.config import GeoTripletConfig
from geotriplet_assets.defs.geography import dataset_splits, targets
from geotriplet_assets.defs.metadata import file_size
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.defs.training import projection_head
from geotriplet_assets.paths import ArtefactLayout, atomic_path, read_parquet_artefact
from geotriplet_assets.serving.bundle_publish import publish_bundle
from geotriplet_assets.serving.serving_model import (
    decode_parity_images,
    export_serving_model,
    load_serving_network,
    parity_max_abs_diff,
    synthetic_parity_images,
)
from geotriplet_assets.stage_settings import backbone_spec, decode_limits
from geotriplet_assets.training.embedding_matrix import project_rows
from geotriplet_assets.training.head_file import HEAD_FILE, head_projection

UNASSIGNED_SPLIT = "unassigned"


def head_path(config: GeoTripletConfig, layout: ArtefactLayout) -> Path:
    return layout.root / config.logging.checkpoint_dir / HEAD_FILE


@dg.asset(
    deps=[projection_head],
    group_name="serving",
    kinds={"onnx", "pytorch"},
    description=(
        "The backbone and the trained head exported together as one ONNX graph (uint8 pixels "
        "in, L2-normalised embeddings out), with its preprocessing spec. A blocking check "
        "compares ONNX Runtime with PyTorch on real images."
    ),
)
def serving_model(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config, layout = settings.config, settings.layout
    started = time.perf_counter()
    network = load_serving_network(backbone_spec(config), head_path(config, layout))
    export_serving_model(network, layout.serving_model_path)
    info = {
        "model": network.model_info(),
        "model_sha256": file_sha256(layout.serving_model_path),
        "preprocessing": json.loads(network.preprocessing.to_json()),
    }
    with atomic_path(layout.serving_info_path) as temporary:
        temporary.write_text(json.dumps(info, indent=2), encoding="utf-8")
    context.log.info(f"exported {layout.serving_model_path}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(layout.serving_model_path)),
            "bytes": file_size(layout.serving_model_path),
            "sha256": info["model_sha256"],
            "backbone": network.backbone_name,
            "embedding_dim": network.embedding_dim,
            "input_size": dg.MetadataValue.json(list(network.preprocessing.input_size)),
            "export_seconds": round(time.perf_counter() - started, 1),
        }
    )


@dg.asset_check(
    asset=serving_model,
    blocking=True,
    description="ONNX Runtime's output of the exported serving model matches PyTorch's "
    "(backbone + head) on real catalogue images (seeded synthetic ones when no photo is on "
    "disk, as for a dataset.h5 alone) within serving.parity_tolerance (max abs "
    "difference over every output value); the result is recorded for the bundle's manifest.",
)
def serving_model_matches_pytorch(settings: GeoTripletSettings) -> dg.AssetCheckResult:
    config, layout = settings.config, settings.layout
    network = load_serving_network(backbone_spec(config), head_path(config, layout))
    images = read_catalog(layout.catalog_dir).images
    present = images.loc[images["path"] != "", "path"]
    paths = [config.input_dir / path for path in present.head(4 * config.serving.parity_images)]
    if paths:
        pixels = decode_parity_images(
            paths, network.preprocessing, decode_limits(config), config.serving.parity_images
        )
        inputs = "catalogue images"
    else:
        # A dataset.h5 without its photos: compare on seeded synthetic pixels instead.
        pixels = synthetic_parity_images(network.preprocessing, config.serving.parity_images)
        inputs = "synthetic images (no catalogued photo on disk)"
    worst = parity_max_abs_diff(network, layout.serving_model_path, pixels)
    record = {
        "model_sha256": file_sha256(layout.serving_model_path),
        "max_abs_diff": worst,
        "images": len(pixels),
        "inputs": inputs,
        "tolerance": config.serving.parity_tolerance,
    }
    with atomic_path(layout.parity_path) as temporary:
        temporary.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return dg.AssetCheckResult(
        passed=worst <= config.serving.parity_tolerance,
        metadata={
            "max_abs_diff": worst,
            "images": len(pixels),
            "inputs": inputs,
            "tolerance": record["tolerance"],
        },
    )


def _indexed_images(layout: ArtefactLayout) -> pd.DataFrame:
    """The embedded images with their split and their file (relative to the input folder)."""
    images = read_parquet_artefact(layout.embedded_images_path, "targets").reset_index(drop=True)
    splits = read_parquet_artefact(layout.splits_path, "dataset_splits")
    split_of_target = splits.set_index("target_index")["split"]
    images["split"] = images["target_index"].map(split_of_target).fillna(UNASSIGNED_SPLIT)
    catalog = read_catalog(layout.catalog_dir).images.set_index("image_id")["path"]
    images["path"] = images["image_id"].map(catalog)
    if (images["path"] == "").any():
        # Some originals are not on disk (a dataset.h5 without all its photos): the bundle then
        # records none, and thumbnails and re-ranking answer that they are unavailable.
        images = images.drop(columns="path")
    return images


@dg.asset(
    deps=[serving_model, targets, dataset_splits],
    group_name="serving",
    kinds={"faiss", "onnx"},
    description=(
        "The search bundle: every embedded image projected by the trained head into a FAISS "
        "index (exact inner product up to serving.index.exact_max_vectors, HNSW or IVF-PQ "
        "above, recall@10 against exact search measured), with the id map, image metadata, "
        "serving model, preprocessing and a manifest of versions and hashes. Written as a new "
        "versioned directory under <data root>/bundles, then `current` is moved atomically; "
        "the retrieval service picks it up by itself."
    ),
)
def search_index(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config, layout = settings.config, settings.layout
    head = head_path(config, layout)
    info = _exported_model_info(layout, head)
    images = _indexed_images(layout)
    project, width = head_projection(head)
    vectors = project_rows(layout, config.model.backbone, images, project, width)
    published = publish_bundle(
        layout.bundles_dir,
        model_path=layout.serving_model_path,
        preprocessing=Preprocessing.from_json(json.dumps(info["preprocessing"])),
        decode_limits=decode_limits(config),
        vectors=vectors,
        images=images,
        index_settings=config.serving.index,
        model_info=info["model"],
        inputs={
            "serving_model": info["model_sha256"],
            "head": info["model"]["head_sha256"],
            "images": file_sha256(layout.embedded_images_path),
            "splits": file_sha256(layout.splits_path),
        },
        keep=config.serving.keep_bundles,
        locate_k=config.serving.locate_k,
        locate_radius_m=config.serving.locate_cluster_radius_m,
        images_root=config.input_dir,
    )
    context.log.info(
        f"bundle {published.version} ({'unchanged, kept' if published.reused else 'published'})"
    )
    index = published.manifest["index"]
    return dg.MaterializeResult(
        metadata={
            "bundle_version": published.version,
            "path": dg.MetadataValue.path(str(published.path)),
            "reused_current": published.reused,
            "vectors": published.manifest["count"],
            "embedding_dim": published.manifest["embedding_dim"],
            "index_type": index["type"],
            "index_params": dg.MetadataValue.json(index["params"]),
            "recall_at_10_vs_exact": index["recall_at_10"],
            "recall_queries": index["recall_queries"],
            "index_build_seconds": index["build_seconds"],
            "bundle_bytes": sum(f["bytes"] for f in published.manifest["files"].values()),
            "images_per_split": dg.MetadataValue.json(images["split"].value_counts().to_dict()),
        }
    )


def _exported_model_info(layout: ArtefactLayout, head: Path) -> dict:
    """serving_model.json, checked to belong to HEAD, with the parity check's result added
    to its `model` entry when the check ran on this very export."""
    info_path = layout.serving_info_path
    if not info_path.is_file():
        raise dg.Failure(f"{info_path} does not exist: materialise serving_model first")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info["model"]["head_sha256"] != file_sha256(head):
        raise dg.Failure(
            f"{layout.serving_model_path} was exported from another head than {head}: "
            "materialise serving_model again"
        )
    if layout.parity_path.is_file():
        parity = json.loads(layout.parity_path.read_text(encoding="utf-8"))
        if parity.get("model_sha256") == info["model_sha256"]:
            info["model"]["parity_max_abs_diff"] = parity["max_abs_diff"]
    return info
