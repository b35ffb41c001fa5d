"""The Dagster UI (dagster-webserver) over a local instance, and a run's page in Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.factories.browser import CHROMIUM_ARGS, chromium_path
from tests.factories.ports import free_port

STARTUP_TIMEOUT_S = 180.0


@contextmanager
def dagster_webserver(dagster_home: Path) -> Iterator[str]:
    """dagster-webserver on the instance in DAGSTER_HOME with the GeoTriplet code location;
    its URL once it answers."""
    port = free_port()
    webserver = Path(sys.executable).with_name("dagster-webserver")
    command = [str(webserver), "-h", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(
        [*command, "-m", "geotriplet_assets.definitions"],
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/server_info", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"dagster-webserver did not answer within {STARTUP_TIMEOUT_S} s"
                )
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def run_page_text(url: str, run_id: str, screenshot: Path, timeout_s: float = 120) -> str:
    """The text of the run's page once its event log shows the run's end; saves SCREENSHOT."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(f"{url}/runs/{run_id}", wait_until="domcontentloaded")
            page.get_by_text("RUN_SUCCESS").first.wait_for(timeout=timeout_s * 1000)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
            return page.inner_text("body")
        finally:
            browser.close()
