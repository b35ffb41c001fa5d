"""`geotriplet synth`: the tiny city written where --out says, with the seed the config gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geotriplet_assets.cli.main import main
from geotriplet_assets.synth.output_dir import MANIFEST_NAME


def test_synth_writes_the_preset_city_with_the_configs_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("synth: {seed: 11}\n")
    out = tmp_path / "city"
    argv = ["synth", "--preset", "tiny", "--out", str(out), "--workers", "1"]
    assert main([*argv, "--config", str(config)]) == 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["config"]["seed"] == 11
    images = sorted(out.rglob("*.jpg"))
    assert len(images) == manifest["images"] > 0
    assert all(image.with_suffix(".txt").is_file() for image in images)
    assert f"{manifest['images']} images" in capsys.readouterr().err
