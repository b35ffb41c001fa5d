"""The GeoTriplet Dagster code location: `dagster dev -m geotriplet_assets.definitions`."""

from __future__ import annotations

import os

import dagster as dg

from geotriplet_assets import checks
from geotriplet_assets.assets.catalog import image_catalog
from geotriplet_assets.assets.embeddings import backbone_embeddings
from geotriplet_assets.assets.geography import dataset_splits, geo_neighbours, targets
from geotriplet_assets.assets.serving import retrieval_report, search_index, serving_model
from geotriplet_assets.assets.training import hyperparameter_search, projection_head
from geotriplet_assets.core.config import CONFIG_ENV_VAR
from geotriplet_assets.executor import RUN_EXECUTOR
from geotriplet_assets.resources import GeoTripletSettings
from geotriplet_assets.sensors import dataset_partitions_sensor

PRE_PARTITION_ASSETS = [image_catalog]
PARTITIONED_ASSETS = [backbone_embeddings]
POST_PARTITION_ASSETS = [
    targets,
    dataset_splits,
    geo_neighbours,
    hyperparameter_search,
    projection_head,
    serving_model,
    search_index,
    retrieval_report,
]
ALL_ASSETS = [*PRE_PARTITION_ASSETS, *PARTITIONED_ASSETS, *POST_PARTITION_ASSETS]
ALL_CHECKS = dg.load_asset_checks_from_modules([checks])


def build_definitions(config_path: str | None = None) -> dg.Definitions:
    settings = GeoTripletSettings(config_path=config_path or os.environ.get(CONFIG_ENV_VAR, ""))
    return dg.Definitions(
        assets=ALL_ASSETS,
        asset_checks=ALL_CHECKS,
        sensors=[dataset_partitions_sensor],
        executor=RUN_EXECUTOR,
        resources={"settings": settings},
    )


defs = build_definitions()
