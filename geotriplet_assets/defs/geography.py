"""Targets, splits and geographic neighbour graphs (the geometry training samples from), and
the checks that guard them."""

import dagster as dg
import numpy as np
import pandas as pd

from geotriplet_assets.catalogue.image_catalog import read_catalog
from geotriplet_assets.defs.catalogue import image_catalog
from geotriplet_assets.defs.features import backbone_embeddings
from geotriplet_assets.defs.metadata import counts_table, figure_markdown, preview_table
from geotriplet_assets.defs.plots import histogram, region_maps
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.features.embedded_images import collect_embedded_images
from geotriplet_assets.geography.neighbour_checks import find_neighbour_problems
from geotriplet_assets.geography.neighbour_store import (
    SplitNeighbours,
    read_neighbours,
    write_neighbours,
)
from geotriplet_assets.geography.neighbours import exact_knn
from geotriplet_assets.geography.splits import LABELS, SPLIT_NAMES, split_targets, verify_buffer
from geotriplet_assets.geography.targets import build_targets, target_index_of_images
from geotriplet_assets.paths import ArtefactLayout, read_parquet_artefact, write_parquet_atomic

TARGET_VECTOR_COLUMNS = ["x", "y", "z"]


def read_targets(layout: ArtefactLayout) -> pd.DataFrame:
    return read_parquet_artefact(layout.targets_path, "targets")


def read_splits(layout: ArtefactLayout) -> pd.DataFrame:
    return read_parquet_artefact(layout.splits_path, "dataset_splits")


@dg.asset(
    deps=[image_catalog, backbone_embeddings],
    group_name="geography",
    kinds={"python", "parquet"},
    description=(
        "One row per target (DatasetID, TargetID) with at least one embedded image: a robust "
        "centre of its images' coordinates and its unit ECEF vector; plus the table of embedded "
        "images with their target and row in their shard."
    ),
)
def targets(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config = settings.config
    layout = settings.layout
    catalog = read_catalog(layout.catalog_dir)
    dataset_ids = sorted(int(i) for i in catalog.images["dataset_id"].unique())
    shard_paths = {i: layout.embedding_shard(config.model.backbone, i) for i in dataset_ids}
    images = collect_embedded_images(catalog.images, shard_paths)
    if images.empty:
        raise dg.Failure("no image was embedded: every image was rejected (see the shards)")
    target_table = build_targets(images)
    images["target_index"] = target_index_of_images(images, target_table)
    write_parquet_atomic(target_table, layout.targets_path)
    write_parquet_atomic(images, layout.embedded_images_path)

    catalogued_targets = catalog.images[["dataset_id", "target_id"]].drop_duplicates()
    views = target_table["n_images"].value_counts().sort_index()
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(layout.targets_path)),
            "targets": len(target_table),
            "embedded_images": len(images),
            "targets_without_embedded_image": len(catalogued_targets) - len(target_table),
            "single_view_targets": int((target_table["n_images"] == 1).sum()),
            "images_per_target": counts_table(
                {str(k): int(v) for k, v in views.items()}, "images", "targets"
            ),
            "median_spread_m": float(target_table["spread_m"].median()),
            "dagster/row_count": len(target_table),
            "preview": preview_table(target_table),
            "map": figure_markdown(region_maps(target_table, title="targets"), "targets map"),
        }
    )


@dg.asset(
    deps=[targets],
    group_name="geography",
    kinds={"python", "parquet"},
    description=(
        "Train/val/test assignment by target, independent of file order and reproducible "
        "from the seed; with a geographic buffer no val or test target lies within "
        "`splits.buffer_m` metres of a train target (those that would are 'excluded')."
    ),
)
def dataset_splits(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config = settings.config
    layout = settings.layout
    target_table = read_targets(layout)
    assignment = split_targets(
        target_table["dataset_id"].to_numpy(),
        target_table["target_id"].to_numpy(),
        target_table[TARGET_VECTOR_COLUMNS].to_numpy(),
        ratios=config.splits.ratios,
        seed=config.splits.seed,
        buffer_m=config.splits.buffer_m,
    )
    splits = target_table[["target_index", "dataset_id", "target_id", "lat", "lon"]].copy()
    splits["split"] = pd.Categorical(assignment.labels, categories=LABELS)
    write_parquet_atomic(splits, layout.splits_path)
    counts = {name: int(assignment.counts.get(name, 0)) for name in LABELS}
    total = max(len(splits), 1)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(layout.splits_path)),
            "targets_by_split": counts_table(counts, "split", "targets"),
            **{f"{name}_targets": count for name, count in counts.items()},
            "fractions": dg.MetadataValue.json(
                {name: round(count / total, 4) for name, count in counts.items()}
            ),
            "seed": config.splits.seed,
            "ratios": dg.MetadataValue.json(list(config.splits.ratios)),
            "buffer_m": config.splits.buffer_m,
            "map": figure_markdown(
                region_maps(splits, colour_by="split", title="splits"), "splits map"
            ),
        }
    )


@dg.asset(
    deps=[targets, dataset_splits],
    group_name="geography",
    kinds={"python", "scipy", "hdf5"},
    description=(
        "Exact k nearest targets of every target within its split, by great-circle distance "
        "(a KD-tree on unit ECEF vectors), stored per split as global target indices and "
        "distances in metres."
    ),
)
def geo_neighbours(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config = settings.config
    layout = settings.layout
    target_table = read_targets(layout)
    split_table = read_splits(layout)
    vectors = target_table[TARGET_VECTOR_COLUMNS].to_numpy()
    graphs: dict[str, SplitNeighbours] = {}
    for name in SPLIT_NAMES:
        members = split_table.loc[split_table["split"] == name, "target_index"].to_numpy()
        graph = exact_knn(vectors[members], config.neighbours.k)
        graphs[name] = SplitNeighbours.from_graph(members, graph)
    write_neighbours(layout.neighbours_path, graphs, config.neighbours.k)

    train = graphs["train"].distances_m
    nearest = train[:, 0] if train.shape[1] else np.zeros(0)
    per_split = {
        name: {"targets": len(graph.target_index), "k": int(graph.neighbours.shape[1])}
        for name, graph in graphs.items()
    }
    metadata: dict[str, object] = {
        "path": dg.MetadataValue.path(str(layout.neighbours_path)),
        "k": config.neighbours.k,
        "per_split": dg.MetadataValue.json(per_split),
    }
    if len(nearest):
        quantiles = np.quantile(train[:, -1], [0.1, 0.5, 0.9])
        metadata |= {
            "train_nearest_median_m": float(np.median(nearest)),
            "train_kth_distance_quantiles_m": dg.MetadataValue.json(
                {
                    "p10": float(quantiles[0]),
                    "p50": float(quantiles[1]),
                    "p90": float(quantiles[2]),
                }
            ),
            "nearest_neighbour_distances": figure_markdown(
                histogram(nearest, "metres", "train: distance to the nearest other target"),
                "nearest neighbour histogram",
            ),
        }
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(
    asset=dataset_splits,
    blocking=True,
    description="Every target has exactly one split; no val or test target lies within "
    "`splits.buffer_m` of a train target.",
)
def splits_disjoint_and_buffered(settings: GeoTripletSettings) -> dg.AssetCheckResult:
    config = settings.config
    layout = settings.layout
    target_table = read_targets(layout)
    split_table = read_splits(layout).sort_values("target_index")
    duplicated = int(split_table["target_index"].duplicated().sum())
    unassigned = len(set(target_table["target_index"]) - set(split_table["target_index"]))
    labels = split_table["split"].astype(str).to_numpy()
    vectors = target_table.set_index("target_index").loc[split_table["target_index"]]
    violations = verify_buffer(labels, vectors[["x", "y", "z"]].to_numpy(), config.splits.buffer_m)
    counts = {name: int((labels == name).sum()) for name in LABELS}
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
    layout = settings.layout
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
