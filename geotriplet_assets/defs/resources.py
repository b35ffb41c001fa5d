"""The `settings` resource: the run's configuration, read once when the run starts."""

from __future__ import annotations

import dagster as dg
from pydantic import PrivateAttr

from geotriplet_assets.config import GeoTripletConfig, load_config
from geotriplet_assets.paths import ArtefactLayout


class GeoTripletSettings(dg.ConfigurableResource):
    """The GeoTriplet YAML config; empty `config_path` means $GEOTRIPLET_CONFIG or the demo."""

    config_path: str = ""
    _config: GeoTripletConfig | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._config = load_config(self.config_path or None)

    @property
    def config(self) -> GeoTripletConfig:
        """The parsed config: once per run (or sensor tick), or on first use outside one."""
        if self._config is None:
            self._config = load_config(self.config_path or None)
        return self._config

    @property
    def layout(self) -> ArtefactLayout:
        return ArtefactLayout(self.config.data_root)
