"""The `geotriplet` command line: its options and subcommands, and dispatch to the module of
the subcommand given."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from geotriplet_assets.cli.console import console
from geotriplet_assets.config import CONFIG_ENV_VAR, ConfigError, load_config
from geotriplet_assets.synth.config import SYNTH_PRESETS

CONFIG_HELP = f"YAML config (default: ${CONFIG_ENV_VAR}, else the embedded demo config)"


def _add_config_option(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--config",
        dest="config_path",
        type=Path,
        default=default,
        metavar="PATH",
        help=CONFIG_HELP,
    )


def _command(
    commands: argparse._SubParsersAction, name: str, summary: str
) -> argparse.ArgumentParser:
    """A subcommand; its --config (SUPPRESS: absent leaves the one given before it alone)."""
    parser = commands.add_parser(name, help=summary, description=summary)
    _add_config_option(parser, argparse.SUPPRESS)
    parser.set_defaults(module=f"geotriplet_assets.cli.{name}")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geotriplet", description="Learn and search building-image similarity."
    )
    parser.add_argument(
        "--version", action="version", version=f"geotriplet {metadata.version('geotriplet')}"
    )
    _add_config_option(parser, None)
    commands = parser.add_subparsers(
        title="commands", dest="command", required=True, metavar="COMMAND"
    )

    synth = _command(commands, "synth", "generate the synthetic demo city")
    synth.add_argument("--out", help="output folder (default: the config's data.input_dir)")
    synth.add_argument(
        "--preset",
        choices=[*SYNTH_PRESETS, "scale"],
        help="size (default: synth.preset); scale: --images cheap 48 px photos for scale runs",
    )
    synth.add_argument("--images", type=int, help="how many photos the scale preset writes")
    synth.add_argument("--seed", type=int, help="random seed (default: synth.seed)")
    synth.add_argument("--workers", type=int, default=2, help="generator processes")

    _command(commands, "materialize", "materialise the whole asset graph through Dagster")

    serve = _command(commands, "serve", "serve the current bundle over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")

    query = _command(commands, "query", "ask the service once and print the answer")
    query.add_argument(
        "--image", type=Path, help="image file (default: a test-split image of the bundle)"
    )
    query.add_argument("--k", type=int, default=5, help="neighbours to ask for (default: 5)")
    query.add_argument(
        "--url",
        help="a running service (default: start one on the current bundle for this query)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # a deprecation inside Lightning itself, printed on import; nothing a user can act on
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config_path)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    if args.config_path is not None:
        args.config_path = args.config_path.resolve()
        os.environ[CONFIG_ENV_VAR] = str(args.config_path)
    command = importlib.import_module(args.module)
    return int(command.run(config, args))


if __name__ == "__main__":
    sys.exit(main())
