"""The settings resource parses the config once per run: every asset of a run sees the same
configuration, even if the file changes while the run goes on."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from geotriplet_assets.defs.resources import GeoTripletSettings


def test_every_asset_of_a_run_sees_the_config_read_at_its_start(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{root: {tmp_path}}}\nneighbours: {{k: 7}}\n")

    @dg.asset
    def first(settings: GeoTripletSettings) -> int:
        config.write_text(f"data: {{root: {tmp_path}}}\nneighbours: {{k: 9}}\n")
        return settings.config.neighbours.k

    @dg.asset(deps=[first])
    def second(settings: GeoTripletSettings) -> int:
        return settings.config.neighbours.k

    settings = GeoTripletSettings(config_path=str(config))
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [first, second], resources={"settings": settings}, instance=instance
        )
        assert result.output_for_node("first") == result.output_for_node("second") == 7
        again = dg.materialize([second], resources={"settings": settings}, instance=instance)
        assert again.output_for_node("second") == 9
    assert GeoTripletSettings(config_path=str(config)).layout.root == tmp_path
