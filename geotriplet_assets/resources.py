"""Dagster resources: the typed configuration every asset reads."""

from __future__ import annotations

import dagster as dg

from geotriplet_assets.core.artefacts import ArtefactLayout
from geotriplet_assets.core.config import GeoTripletConfig, load_config


class GeoTripletSettings(dg.ConfigurableResource):
    """The GeoTriplet YAML config; empty `config_path` means $GEOTRIPLET_CONFIG or the demo."""

    config_path: str = ""

    def load(self) -> GeoTripletConfig:
        return load_config(self.config_path or None)

    def layout(self) -> ArtefactLayout:
        return ArtefactLayout(self.load().data_root)
