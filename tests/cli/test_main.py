"""The `geotriplet` command line: --config on either side of the subcommand, --version and
--help, through the installed console script and through `main`."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from geotriplet_assets.cli.main import build_parser, main

COMMANDS = ("synth", "materialize", "serve", "query")


def test_config_is_accepted_before_and_after_the_subcommand(tmp_path: Path) -> None:
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    parser = build_parser()
    assert parser.parse_args(["--config", str(first), "materialize"]).config_path == first
    assert parser.parse_args(["materialize", "--config", str(first)]).config_path == first
    assert parser.parse_args(["materialize"]).config_path is None
    # given twice, the one after the subcommand is the one that counts
    both = parser.parse_args(["--config", str(first), "query", "--config", str(second)])
    assert both.config_path == second


@pytest.mark.parametrize("position", ["before", "after"])
def test_a_config_after_the_subcommand_is_the_one_loaded(
    tmp_path: Path, position: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("neighbours: {k: -3}\n")
    argv = ["--config", str(bad), "materialize"]
    if position == "after":
        argv = ["materialize", "--config", str(bad)]
    assert main(argv) == 2
    assert "neighbours.k" in capsys.readouterr().err


def test_version_and_help_from_the_console_script() -> None:
    script = shutil.which("geotriplet") or str(Path(__file__).parents[2] / ".venv/bin/geotriplet")
    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"geotriplet {metadata.version('geotriplet')}"
    shown = subprocess.run(
        [script, "--help"], capture_output=True, text=True, check=True, env={"COLUMNS": "100"}
    ).stdout
    listed = shown[shown.index("commands:") :].splitlines()
    for name in COMMANDS:
        line = next(line for line in listed if line.split()[:1] == [name])
        summary = line.split(maxsplit=1)[1]
        assert summary and summary == summary.strip(), f"{name} has no one-line summary"
    assert "--config PATH" in shown


def test_every_subcommand_has_its_own_help_with_the_config_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exited:
            main([name, "--help"])
        assert exited.value.code == 0
        assert "--config PATH" in capsys.readouterr().out
