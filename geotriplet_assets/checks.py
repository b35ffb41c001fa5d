"""Asset checks; blocking where a bad artefact must not flow on to training or search."""

import json

import dagster as dg
import numpy as np

from geotriplet_assets.assets.catalog import image_catalog
from geotriplet_assets.assets.embeddings import backbone_embeddings
from geotriplet_assets.assets.geography import (
    dataset_splits,
    geo_neighbours,
    read_splits,
    read_targets,
)
from geotriplet_assets.assets.serving import head_path, serving_model
from geotriplet_assets.core.atomic import atomic_path
from geotriplet_assets.core.backbone import file_sha256
from geotriplet_assets.core.catalog import read_catalog
from geotriplet_assets.core.embedding_store import read_embedding_shard
from geotriplet_assets.core.model_config import backbone_spec, decode_limits
from geotriplet_assets.core.neighbour_checks import find_neighbour_problems
from geotriplet_assets.core.neighbour_store import read_neighbours
from geotriplet_assets.core.serving_model import (
    decode_parity_images,
    load_serving_network,
    parity_max_abs_diff,
)
from geotriplet_assets.core.splits import SPLIT_NAMES, verify_buffer
from geotriplet_assets.resources import GeoTripletSettings

REJECTION_WARNING_FRACTION = 0.05


def _partition_shard(context: dg.AssetCheckExecutionContext, settings: GeoTripletSettings):
    config = settings.load()
    dataset_id = int(context.op_execution_context.partition_key)
    path = settings.layout().embedding_shard(config.model.backbone, dataset_id)
    return dataset_id, read_embedding_shard(path)


@dg.asset_check(
    asset=image_catalog,
    description=f"Warns when more than {REJECTION_WARNING_FRACTION:.0%} of metadata files "
    "were rejected (the run still succeeds: rejections are reported, not fatal).",
)
def few_rejected_metadata_files(settings: GeoTripletSettings) -> dg.AssetCheckResult:
    catalog = read_catalog(settings.layout().catalog_dir)
    rejected, accepted = len(catalog.rejections), len(catalog.images)
    fraction = rejected / max(rejected + accepted, 1)
    return dg.AssetCheckResult(
        passed=fraction <= REJECTION_WARNING_FRACTION,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rejected": rejected, "accepted": accepted, "fraction": round(fraction, 4)},
    )


@dg.asset_check(
    asset=backbone_embeddings,
    blocking=True,
    description="Every embedding is finite and has a non-zero norm (no zero-filled failures).",
)
def embeddings_finite_and_nonzero(
    context: dg.AssetCheckExecutionContext, settings: GeoTripletSettings
) -> dg.AssetCheckResult:
    dataset_id, shard = _partition_shard(context, settings)
    embeddings = shard.embeddings
    non_finite = int((~np.isfinite(embeddings)).any(axis=1).sum())
    norms = np.linalg.norm(np.nan_to_num(embeddings), axis=1)
    zero = int((norms < 1e-6).sum())
    return dg.AssetCheckResult(
        passed=non_finite == 0 and zero == 0 and len(embeddings) > 0,
        metadata={
            "dataset_id": dataset_id,
            "rows": len(embeddings),
            "non_finite_rows": non_finite,
            "zero_rows": zero,
            "min_norm": float(norms.min()) if len(norms) else 0.0,
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
    dataset_id, shard = _partition_shard(context, settings)
    catalog = read_catalog(settings.layout().catalog_dir)
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


@dg.asset_check(
    asset=dataset_splits,
    blocking=True,
    description="Every target has exactly one split; no val or test target lies within "
    "`splits.buffer_m` of a train target.",
)
def splits_disjoint_and_buffered(settings: GeoTripletSettings) -> dg.AssetCheckResult:
    config = settings.load()
    layout = settings.layout()
    target_table = read_targets(layout)
    split_table = read_splits(layout).sort_values("target_index")
    duplicated = int(split_table["target_index"].duplicated().sum())
    unassigned = len(set(target_table["target_index"]) - set(split_table["target_index"]))
    labels = split_table["split"].astype(str).to_numpy()
    vectors = target_table.set_index("target_index").loc[split_table["target_index"]]
    violations = verify_buffer(labels, vectors[["x", "y", "z"]].to_numpy(), config.splits.buffer_m)
    counts = {name: int((labels == name).sum()) for name in [*SPLIT_NAMES, "excluded"]}
    return dg.AssetCheckResult(
        passed=duplicated == 0 and unassigned == 0 and violations == 0,
        metadata={
            "duplicated_targets": duplicated,
            "unassigned_targets": unassigned,
            "buffer_violations": violations,
            "buffer_m": config.splits.buffer_m,
            "counts": dg.MetadataValue.json(counts),
        },
    )


@dg.asset_check(
    asset=geo_neighbours,
    blocking=True,
    description="Each split's neighbour lists are sorted, never contain the target itself, "
    "match the great-circle distance recomputed from coordinates, and are symmetric-"
    "consistent (j near i closer than j's k-th neighbour implies i in j's list).",
)
def neighbours_sorted_and_consistent(settings: GeoTripletSettings) -> dg.AssetCheckResult:
    layout = settings.layout()
    target_table = read_targets(layout).sort_values("target_index")
    lat, lon = target_table["lat"].to_numpy(), target_table["lon"].to_numpy()
    graphs = read_neighbours(layout.neighbours_path)
    problems = {name: find_neighbour_problems(graph, lat, lon) for name, graph in graphs.items()}
    return dg.AssetCheckResult(
        passed=all(p.total == 0 for p in problems.values()),
        metadata={
            name: dg.MetadataValue.json(
                {
                    "unsorted_rows": p.unsorted_rows,
                    "self_edges": p.self_edges,
                    "distance_mismatches": p.distance_mismatches,
                    "missing_reverse_edges": p.missing_reverse_edges,
                }
            )
            for name, p in problems.items()
        },
    )


@dg.asset_check(
    asset=serving_model,
    blocking=True,
    description="ONNX Runtime's output of the exported serving model matches PyTorch's "
    "(backbone + head) on real catalogue images within serving.parity_tolerance (max abs "
    "difference over every output value); the result is recorded for the bundle's manifest.",
)
def serving_model_matches_pytorch(settings: GeoTripletSettings) -> dg.AssetCheckResult:
    config = settings.load()
    layout = settings.layout()
    network = load_serving_network(backbone_spec(config), head_path(config, settings))
    images = read_catalog(layout.catalog_dir).images
    paths = [
        config.input_dir / path for path in images["path"].head(4 * config.serving.parity_images)
    ]
    pixels = decode_parity_images(
        paths, network.preprocessing, decode_limits(config), config.serving.parity_images
    )
    worst = parity_max_abs_diff(network, layout.serving_model_path, pixels)
    record = {
        "model_sha256": file_sha256(layout.serving_model_path),
        "max_abs_diff": worst,
        "images": len(pixels),
        "tolerance": config.serving.parity_tolerance,
    }
    with atomic_path(layout.parity_path) as temporary:
        temporary.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return dg.AssetCheckResult(
        passed=worst <= config.serving.parity_tolerance,
        metadata={"max_abs_diff": worst, "images": len(pixels), "tolerance": record["tolerance"]},
    )
