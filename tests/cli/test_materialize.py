"""`geotriplet materialize`: failures named before any run."""

from __future__ import annotations

from pathlib import Path

import pytest

from geotriplet_assets.cli.main import main

pytestmark = pytest.mark.slow


def test_missing_input_folder_and_bad_config_fail_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "config.yaml"
    missing.write_text(f"data: {{root: {tmp_path}, input_dir: nowhere}}\n")
    assert main(["--config", str(missing), "materialize"]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("neighbours: {k: -3}\n")
    assert main(["--config", str(bad), "materialize"]) == 2
    assert "neighbours.k" in capsys.readouterr().err
