"""Headless Chromium (Debian's package) for the tests of pages: the Dagster UI's lineage page
and the service's search page."""

from __future__ import annotations

import shutil

# Chromium on a machine without a display or outside network, run as root in CI
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found (Debian: apt-get install chromium)")
