"""Headless Chromium (Debian's package) for the tests of pages: the Dagster UI's lineage page
and the service's search page."""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED_ENV = "GEOTRIPLET_REQUIRE_BROWSER"

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


def browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")):
        return "no Chromium (Debian: apt-get install chromium)"
    return None


def skip_without_browser(*, allow_module_level: bool = False) -> None:
    """Skip (the test, or the module) without Chromium and Playwright, unless CI requires them
    ($GEOTRIPLET_REQUIRE_BROWSER), where their absence is an error."""
    if reason := browser_missing():
        if os.environ.get(REQUIRED_ENV):
            raise RuntimeError(f"{REQUIRED_ENV} is set but {reason}")
        pytest.skip(reason, allow_module_level=allow_module_level)
