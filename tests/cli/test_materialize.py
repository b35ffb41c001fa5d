"""`geotriplet materialize`: failures named before any run; the tiny preset completes with
the default config."""

from __future__ import annotations

import json
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


def test_the_tiny_preset_with_the_default_config_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 10, item 8: the 100 m buffer leaves the tiny city one test target and no test
    # building with two views; the report says so instead of failing the run.
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{root: {tmp_path / 'data'}, input_dir: city}}\n")
    assert main(["synth", "--preset", "tiny", "--workers", "1", "--config", str(config)]) == 0
    assert main(["materialize", "--config", str(config)]) == 0
    out = capsys.readouterr().err
    report = json.loads((tmp_path / "data" / "reports" / "retrieval_report.json").read_text())
    assert report["bundle_version"] in out
    if report["queries"] == 0:  # what the seeded tiny city gives today
        assert "through the bundle: nothing measured" in out
        assert report["recall_at"]["1"] is None


def test_a_data_root_that_cannot_be_written_is_named_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "city").mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"data: {{root: {blocker / 'data'}, input_dir: {tmp_path / 'city'}}}\n")
    assert main(["materialize", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "cannot be written" in err and "NotADirectoryError" in err
    assert "Traceback" not in err
