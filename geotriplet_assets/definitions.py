"""The GeoTriplet Dagster code location: `dagster dev -m geotriplet_assets.definitions`.

Every asset and asset check defined in `geotriplet_assets.defs` is part of it; adding a stage
module there adds its assets here.
"""

from __future__ import annotations

import os

import dagster as dg

from geotriplet_assets import defs as stages
from geotriplet_assets.config import CONFIG_ENV_VAR
from geotriplet_assets.defs.executor import RUN_EXECUTOR
from geotriplet_assets.defs.resources import GeoTripletSettings
from geotriplet_assets.defs.sensors import dataset_partitions_sensor

ALL_ASSETS = dg.load_assets_from_package_module(stages)
ALL_CHECKS = dg.load_asset_checks_from_package_module(stages)


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
