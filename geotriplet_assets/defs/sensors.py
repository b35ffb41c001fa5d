"""Keep the `dataset_id` partitions in step with the input folder, from the daemon's first tick.

`image_catalog` registers the partitions it finds, but only once it has run. On a fresh
instance the partitioned `backbone_embeddings` would have no partition at all, and the UI's
"Materialize all" would have none to launch. This sensor registers one partition per
DatasetID of the catalogue the input folder would give, so that a whole-graph backfill over
all partitions covers every region, and a region added later shows up as a missing partition.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dagster as dg

from geotriplet_assets.catalogue.image_catalog import EmptyCatalogError, build_catalog
from geotriplet_assets.defs.partitions import DATASET_PARTITIONS
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.paths import dataset_partition_key

SCAN_INTERVAL_SECONDS = 30


def input_folder_fingerprint(input_dir: Path) -> str:
    """Every folder's path and modification time: changes when files are added, removed or renamed.

    Cheap next to parsing every metadata file; a file edited in place is not noticed, but the
    catalogue registers what it finds whenever it runs.
    """
    digest = hashlib.sha256()
    for folder, subfolders, _ in os.walk(input_dir):
        subfolders.sort()
        digest.update(f"{folder}\0{os.stat(folder).st_mtime_ns}\n".encode())
    return digest.hexdigest()


def dataset_partition_keys(input_dir: Path) -> list[str]:
    """The partition keys of the DatasetIDs with at least one usable image under INPUT_DIR."""
    catalog = build_catalog(input_dir)
    return sorted({dataset_partition_key(i) for i in catalog.images["dataset_id"].unique()})


@dg.sensor(
    minimum_interval_seconds=SCAN_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Registers a `dataset_id` partition for every DatasetID under the input folder, so "
        "that 'Materialize all' covers every region even before the catalogue has run. "
        "Launches no run."
    ),
)
def dataset_partitions_sensor(
    context: dg.SensorEvaluationContext, settings: GeoTripletSettings
) -> dg.SensorResult | dg.SkipReason:
    if settings.config.data.hdf5_path:
        return dg.SkipReason(
            "data.hdf5_path is set: image_catalog registers the DatasetIDs of that file"
        )
    input_dir = settings.config.input_dir
    if not input_dir.is_dir():
        return dg.SkipReason(f"input folder {input_dir} does not exist yet")
    fingerprint = input_folder_fingerprint(input_dir)
    if fingerprint == context.cursor:
        return dg.SkipReason(f"no file added or removed under {input_dir} since the last scan")
    try:
        wanted = dataset_partition_keys(input_dir)
    except EmptyCatalogError as error:
        return dg.SkipReason(str(error))
    known = set(context.instance.get_dynamic_partitions(DATASET_PARTITIONS.name))
    new_keys = [key for key in wanted if key not in known]
    context.log.info(f"DatasetIDs under {input_dir}: {wanted} ({len(new_keys)} new)")
    requests = [DATASET_PARTITIONS.build_add_request(new_keys)] if new_keys else []
    return dg.SensorResult(dynamic_partitions_requests=requests, cursor=fingerprint)
