"""The image catalogue: every image with its metadata, and every rejected file with its reason."""

from pathlib import Path

import dagster as dg

from geotriplet_assets.catalogue.image_catalog import (
    Catalog,
    build_catalog,
    catalog_counts,
    read_catalog,
    write_catalog,
)
from geotriplet_assets.catalogue.legacy_catalog import legacy_catalog
from geotriplet_assets.catalogue.legacy_dataset import LegacyDatasetError, read_legacy_dataset
from geotriplet_assets.config import GeoTripletConfig
from geotriplet_assets.defs.metadata import counts_table, figure_markdown, preview_table
from geotriplet_assets.defs.partitions import DATASET_PARTITIONS
from geotriplet_assets.defs.plots import region_maps
from geotriplet_assets.defs.progress import logged_progress
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.paths import ArtefactLayout, dataset_partition_key, write_parquet_atomic

REJECTION_WARNING_FRACTION = 0.05
_PREVIEW_COLUMNS = ["image_id", "dataset_id", "target_id", "patch_id", "lat", "lon", "form"]


@dg.asset(
    group_name="catalogue",
    kinds={"python", "parquet"},
    description=(
        "Every image under the input folder with its parsed `.txt` metadata (long 17-number "
        "`d` line, optional `a` line, or the short `d` + `c` form), or, when data.hdf5_path "
        "names the original project's dataset.h5, every usable row of that file. Rejected "
        "files (rows) are kept in a rejection table with file, line and reason. Registers one "
        "`dataset_id` partition per DatasetID found."
    ),
)
def image_catalog(context: dg.AssetExecutionContext, settings: GeoTripletSettings):
    config = settings.config
    layout = settings.layout
    catalog = _catalog(context, config, layout)
    write_catalog(catalog, layout.catalog_dir)

    keys = sorted({dataset_partition_key(i) for i in catalog.images["dataset_id"].unique()})
    known = set(context.instance.get_dynamic_partitions(DATASET_PARTITIONS.name))
    new_keys = [key for key in keys if key not in known]
    if new_keys:
        context.instance.add_dynamic_partitions(DATASET_PARTITIONS.name, new_keys)
    context.log.info(f"dataset partitions: {keys} ({len(new_keys)} new)")

    counts = catalog_counts(catalog)
    rejections = catalog.rejections
    return dg.MaterializeResult(
        metadata={
            "source": dg.MetadataValue.path(str(_source(config))),
            "path": dg.MetadataValue.path(str(layout.catalog_dir)),
            "images": counts["images"],
            "targets": counts["targets"],
            "datasets": counts["datasets"],
            "rejected_files": len(rejections),
            "rejections_by_reason": counts_table(counts["rejections_by_reason"], "reason"),
            "images_by_dataset": counts_table(
                {dataset_partition_key(k): v for k, v in counts["images_by_dataset"].items()},
                "dataset_id",
            ),
            "dagster/row_count": counts["images"],
            "preview": preview_table(catalog.images[_PREVIEW_COLUMNS]),
            "rejection_preview": preview_table(rejections, rows=20),
            "map": figure_markdown(region_maps(catalog.images, title="catalogued images"), "map"),
            "partitions_added": dg.MetadataValue.json(new_keys),
        }
    )


def _source(config: GeoTripletConfig) -> Path:
    return config.resolve(config.data.hdf5_path) if config.data.hdf5_path else config.input_dir


def _catalog(
    context: dg.AssetExecutionContext, config: GeoTripletConfig, layout: ArtefactLayout
) -> Catalog:
    """The .txt catalogue of the input folder, or that of data.hdf5_path (whose rows' places in
    the file are written beside it)."""
    if not config.data.hdf5_path:
        layout.legacy_rows_path.unlink(missing_ok=True)
        return build_catalog(
            config.input_dir,
            workers=config.catalogue.workers,
            progress=logged_progress(
                "catalogue",
                context.log.info,
                lambda parsed, found: (
                    f"parsed the metadata of {parsed} of {found} files found so far"
                ),
                log_when_done=False,  # more files may still be found
            ),
        )
    try:
        legacy = read_legacy_dataset(config.resolve(config.data.hdf5_path))
    except LegacyDatasetError as error:
        raise dg.Failure(f"data.hdf5_path: {error}") from error
    catalog, rows = legacy_catalog(legacy, config.input_dir)
    write_parquet_atomic(rows, layout.legacy_rows_path)
    return catalog


@dg.asset_check(
    asset=image_catalog,
    description=f"Warns when more than {REJECTION_WARNING_FRACTION:.0%} of metadata files "
    "were rejected (the run still succeeds: rejections are reported, not fatal).",
)
def few_rejected_metadata_files(settings: GeoTripletSettings) -> dg.AssetCheckResult:
    catalog = read_catalog(settings.layout.catalog_dir)
    rejected, accepted = len(catalog.rejections), len(catalog.images)
    fraction = rejected / max(rejected + accepted, 1)
    return dg.AssetCheckResult(
        passed=fraction <= REJECTION_WARNING_FRACTION,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rejected": rejected, "accepted": accepted, "fraction": round(fraction, 4)},
    )
