"""`python -m service`: the retrieval service on uvicorn, settings from the environment
(`GEOTRIPLET_SERVICE_*`, see `service.settings`) and these options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from service.app import create_app
from service.settings import ServiceSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument(
        "--bundles-dir",
        type=Path,
        help="folder with the bundles and `current` (default: GEOTRIPLET_SERVICE_BUNDLES_DIR)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn's log level (default: info)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {} if args.bundles_dir is None else {"bundles_dir": args.bundles_dir}
    app = create_app(ServiceSettings(**overrides))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
