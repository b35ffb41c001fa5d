"""`geotriplet serve`: the retrieval service (`python -m service`) on the data root's bundles."""

from __future__ import annotations

import argparse
import os
import sys

from geotriplet_assets.cli.console import console
from geotriplet_assets.config import GeoTripletConfig
from geotriplet_assets.paths import ArtefactLayout


def service_command(bundles_dir: os.PathLike[str] | str, host: str, port: int) -> list[str]:
    """The command line that runs the service on BUNDLES_DIR, in this Python environment."""
    return [
        sys.executable, "-m", "service", "--bundles-dir", os.fspath(bundles_dir),
        "--host", host, "--port", str(port),
    ]  # fmt: skip


def run(config: GeoTripletConfig, args: argparse.Namespace) -> int:
    bundles_dir = ArtefactLayout(config.data_root).bundles_dir
    console.print(f"serving the current bundle of {bundles_dir}")
    command = service_command(bundles_dir, args.host, args.port)
    os.execv(command[0], command)
    return 0  # not reached: the service replaces this process
