"""The service's search page (GET /) of the compose stack, opened in headless Chromium."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.factories.browser import CHROMIUM_ARGS, chromium_path

# busy from the first request of a search until its answers are drawn (service/static/app.js)
SEARCH_DONE = "() => !document.body.hasAttribute('aria-busy')"
THUMBNAILS_LOADED = (
    "() => [...document.querySelectorAll('#results img')]"
    ".every(img => img.complete && img.naturalWidth > 0)"
)


@dataclass(frozen=True)
class PageAnswer:
    """What the page showed for one uploaded photo."""

    results: list[dict[str, str]]  # each result's data attributes: imageId, building
    location_text: str
    lat: float
    lon: float
    thumbnails: int


def search_with_upload(service_url: str, photo: Path, screenshot: Path) -> PageAnswer:
    """Upload PHOTO on the search page, wait for its results and thumbnails; save SCREENSHOT."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(service_url.rstrip("/") + "/")
            with page.expect_response(lambda response: response.url.endswith("/similar")):
                page.set_input_files("#photo", photo)
            page.wait_for_function(SEARCH_DONE, timeout=120_000)
            page.wait_for_function(THUMBNAILS_LOADED, timeout=60_000)
            results = page.locator(".result").evaluate_all(
                "nodes => nodes.map(n => ({imageId: n.dataset.imageId,"
                " building: n.dataset.building}))"
            )
            text = page.locator("#location-text")
            page.screenshot(path=str(screenshot), full_page=True)
            if errors:
                raise AssertionError(f"the page threw: {errors}")
            return PageAnswer(
                results=results,
                location_text=text.inner_text(),
                lat=float(text.get_attribute("data-lat") or "nan"),
                lon=float(text.get_attribute("data-lon") or "nan"),
                thumbnails=page.locator("#results img").count(),
            )
        finally:
            browser.close()
