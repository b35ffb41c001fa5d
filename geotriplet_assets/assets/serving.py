"""The serving side: the exported model, the published search bundle, and its retrieval report."""

import json
import time

import dagster as dg
import pandas as pd

from geotriplet_assets.assets.geography import dataset_splits, targets
from geotriplet_assets.assets.training import projection_head
from geotriplet_assets.core.atomic import atomic_path, read_parquet_artefact
from geotriplet_assets.core.backbone import Preprocessing, file_sha256
from geotriplet_assets.core.catalog import read_catalog
from geotriplet_assets.core.config import GeoTripletConfig
from geotriplet_assets.core.model_config import backbone_spec, decode_limits
from geotriplet_assets.core.retrieval_report import build_retrieval_report
from geotriplet_assets.core.search_bundle import publish_bundle
from geotriplet_assets.core.serving_model import export_serving_model, load_serving_network
from geotriplet_assets.core.training.head_export import embed_with_head
from geotriplet_assets.core.training.trainer import HEAD_FILE
from geotriplet_assets.core.training_data import read_backbone_embeddings
from geotriplet_assets.dagster_metadata import file_size, preview_table
from geotriplet_assets.resources import GeoTripletSettings

UNASSIGNED_SPLIT = "unassigned"


def head_path(config: GeoTripletConfig, settings: GeoTripletSettings):
    return settings.layout().root / config.logging.checkpoint_dir / HEAD_FILE


def require_pipeline_data(config: GeoTripletConfig) -> None:
    if config.data.hdf5_path:
        raise dg.Failure(
            "the search bundle indexes the pipeline's own images; data.hdf5_path (the original "
            "project's dataset.h5) has no image files to serve. Unset it to build a bundle."
        )


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
    config = settings.load()
    require_pipeline_data(config)
    layout = settings.layout()
    started = time.perf_counter()
    network = load_serving_network(backbone_spec(config), head_path(config, settings))
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


def _indexed_images(settings: GeoTripletSettings) -> pd.DataFrame:
    layout = settings.layout()
    images = read_parquet_artefact(layout.embedded_images_path, "targets").reset_index(drop=True)
    splits = read_parquet_artefact(layout.splits_path, "dataset_splits")
    split_of_target = splits.set_index("target_index")["split"]
    images["split"] = images["target_index"].map(split_of_target).fillna(UNASSIGNED_SPLIT)
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
    config = settings.load()
    require_pipeline_data(config)
    layout = settings.layout()
    info_path = layout.serving_info_path
    if not info_path.is_file():
        raise dg.Failure(f"{info_path} does not exist: materialise serving_model first")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    head = head_path(config, settings)
    if info["model"]["head_sha256"] != file_sha256(head):
        raise dg.Failure(
            f"{layout.serving_model_path} was exported from another head than {head}: "
            "materialise serving_model again"
        )
    images = _indexed_images(settings)
    embeddings = read_backbone_embeddings(layout, config.model.backbone, images)
    vectors = embed_with_head(head, embeddings)
    parity = (
        json.loads(layout.parity_path.read_text(encoding="utf-8"))
        if layout.parity_path.is_file()
        else {}
    )
    model_info = dict(info["model"])
    if parity.get("model_sha256") == info["model_sha256"]:
        model_info["parity_max_abs_diff"] = parity["max_abs_diff"]
    published = publish_bundle(
        layout.bundles_dir,
        model_path=layout.serving_model_path,
        preprocessing=Preprocessing.from_json(json.dumps(info["preprocessing"])),
        decode_limits=decode_limits(config),
        vectors=vectors,
        images=images,
        index_settings=config.serving.index,
        model_info=model_info,
        inputs={
            "serving_model": info["model_sha256"],
            "head": info["model"]["head_sha256"],
            "images": file_sha256(layout.embedded_images_path),
            "splits": file_sha256(layout.splits_path),
        },
        keep=config.serving.keep_bundles,
    )
    index = published.manifest["index"]
    context.log.info(
        f"bundle {published.version} ({'unchanged, kept' if published.reused else 'published'})"
    )
    split_counts = images["split"].value_counts().to_dict()
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
            "bundle_bytes": sum(f["bytes"] for f in published.manifest["files"].values()),
            "images_per_split": dg.MetadataValue.json(split_counts),
        }
    )


@dg.asset(
    deps=[search_index],
    group_name="serving",
    kinds={"faiss", "onnx"},
    description=(
        "Retrieval quality of the published bundle on the test split, computed through the "
        "service's own search code exactly as `POST /similar` answers: recall@k and mAP@R "
        "against the whole index (the query image itself excluded), localisation error of the "
        "top hit, and a sample of test images queried through the uploaded-image path "
        "(decode + ONNX model) to show it agrees with the indexed vectors."
    ),
)
def retrieval_report(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config = settings.load()
    require_pipeline_data(config)
    layout = settings.layout()
    catalog = read_catalog(layout.catalog_dir).images
    image_paths = {
        image_id: config.input_dir / path
        for image_id, path in zip(catalog["image_id"], catalog["path"], strict=True)
    }
    report = build_retrieval_report(
        layout.bundles_dir,
        image_paths=image_paths,
        upload_queries=config.serving.report_upload_queries,
    )
    with atomic_path(layout.retrieval_report_path) as temporary:
        temporary.write_text(json.dumps(report.as_dict(), indent=2), encoding="utf-8")
    context.log.info(
        f"bundle {report.bundle_version}: test recall@1 {report.recall_at[1]:.3f} over "
        f"{report.queries} queries"
    )
    return dg.MaterializeResult(
        metadata={
            "bundle_version": report.bundle_version,
            "path": dg.MetadataValue.path(str(layout.retrieval_report_path)),
            "queries": report.queries,
            **{f"recall_at_{k}": value for k, value in report.recall_at.items()},
            "map_at_r": report.map_at_r,
            "median_error_m": report.median_error_m,
            "p90_error_m": report.p90_error_m,
            "upload_queries": report.upload_queries,
            "upload_min_cosine": report.upload_min_cosine,
            "upload_top1_agreement": report.upload_top1_agreement,
            "summary": preview_table(pd.DataFrame([report.summary_row()]), rows=1),
        }
    )
