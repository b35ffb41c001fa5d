"""The Dagster UI's global asset lineage page, opened in headless Chromium (Debian's package)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.dagster_api import DagsterApi
from tests.factories.browser import CHROMIUM_ARGS, chromium_path

# large enough that the fitted graph draws every node in full, with its status
VIEWPORT = {"width": 3000, "height": 1700}
# an asset node of the graph (the SVG embeds each node's HTML)
NODE = "foreignObject:has([class*='AssetNode_assetNodeContainer'])"
# a label of the full node, absent from the small one drawn when the graph is zoomed out
FULL_NODE_LABEL = "Latest event"


def capture_lineage(
    webserver_url: str, asset_names: list[str], screenshot: Path
) -> dict[str, str]:
    """Each asset's node text on the lineage page, every group expanded; saves SCREENSHOT."""
    from playwright.sync_api import sync_playwright

    # what the Skip button of the UI's first-visit dialog (a community sign-up) records; the
    # dialog would otherwise open over the graph at some moment after the page has loaded
    DagsterApi(webserver_url).query("mutation SkipFirstVisitDialog { setNuxSeen }")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(webserver_url.rstrip("/") + "/asset-groups", wait_until="networkidle")
            page.get_by_text("Global asset lineage").wait_for()
            page.get_by_text("Materialize all").first.wait_for()
            page.get_by_text("Hide navigation").click()
            page.keyboard.press("Alt+KeyE")  # the graph's shortcut: expand every group
            nodes = {
                name: page.locator(NODE, has=page.get_by_text(name, exact=True)).first
                for name in asset_names
            }
            for node in nodes.values():
                node.get_by_text(FULL_NODE_LABEL).wait_for()
            texts = _texts_once_loaded(page, nodes)
            page.screenshot(path=str(screenshot))
            return texts
        finally:
            browser.close()


def _texts_once_loaded(page, nodes: dict, timeout_s: float = 60) -> dict[str, str]:
    """The nodes' texts once none of them is still loading its status."""
    deadline = time.monotonic() + timeout_s
    while True:
        texts = {name: node.locator("div").first.inner_text() for name, node in nodes.items()}
        if not any("Loading" in text for text in texts.values()):
            page.wait_for_timeout(1000)  # let the last status settle before the screenshot
            return texts
        if time.monotonic() > deadline:
            loading = [name for name, text in texts.items() if "Loading" in text]
            raise AssertionError(f"asset nodes still loading after {timeout_s:.0f} s: {loading}")
        page.wait_for_timeout(500)
