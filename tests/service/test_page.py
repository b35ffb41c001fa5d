"""The search page (GET /) in headless Chromium against the real service on the tiny city's
bundle: what it shows is what /locate and /similar answer, thumbnails included."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from rich.console import Console

from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.cli.query import local_service
from tests.factories.browser import CHROMIUM_ARGS, skip_without_browser

pytestmark = pytest.mark.slow
ARTEFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artefacts"

skip_without_browser(allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402

from tests.factories.browser import chromium_path  # noqa: E402

# busy from the first request of a search until its answers are drawn (service/static/app.js)
SEARCH_DONE = "() => !document.body.hasAttribute('aria-busy')"


@pytest.fixture(scope="module")
def service_url(tiny_city_bundle: Path) -> Iterator[str]:
    with local_service(tiny_city_bundle, Console(file=io.StringIO())) as url:
        yield url


@pytest.fixture(scope="module")
def bundle(tiny_city_bundle: Path) -> LoadedBundle:
    return load_bundle(tiny_city_bundle / (tiny_city_bundle / "current").read_text().strip())


@pytest.fixture(scope="module")
def photo(bundle: LoadedBundle) -> Path:
    """The original of the bundle's first test-split image."""
    splits = bundle.images.splits.to_pylist()
    row = splits.index("test")
    root, relative = bundle.manifest.images_root, bundle.images.path(row)
    assert root is not None and relative is not None
    return root / relative


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"the page threw: {errors}"


def _search(page: Page, action) -> None:
    with page.expect_response(lambda response: urlparse(response.url).path == "/similar"):
        action()
    page.wait_for_function(SEARCH_DONE)


def _shown(page: Page) -> list[str]:
    return page.locator(".result").evaluate_all("nodes => nodes.map(n => n.dataset.imageId)")


def _answer(url: str, path: str, photo: Path | None = None, **fields: object) -> dict:
    if photo is not None:
        files = {"image": (photo.name, photo.read_bytes(), "image/jpeg")}
        data = {key: str(value).lower() for key, value in fields.items()}
        response = httpx.post(url + path, files=files, data=data, timeout=60)
    else:
        response = httpx.post(url + path, json=fields, timeout=60)
    response.raise_for_status()
    return response.json()


def test_an_uploaded_photo_shows_the_services_answers(
    page: Page, service_url: str, photo: Path
) -> None:
    started = time.perf_counter()
    page.goto(service_url + "/")
    _search(page, lambda: page.set_input_files("#photo", photo))
    first_results_s = time.perf_counter() - started

    similar = _answer(service_url, "/similar", photo, k=10, group_by_building=False)
    assert _shown(page) == [hit["image_id"] for hit in similar["neighbours"]]
    located = _answer(service_url, "/locate", photo, k=20)
    text = page.locator("#location-text")
    assert float(text.get_attribute("data-lat")) == pytest.approx(located["lat"])
    assert float(text.get_attribute("data-lon")) == pytest.approx(located["lon"])
    assert f"± {round(located['uncertainty_m'])} m" in text.inner_text()
    # every hit drawn on the map, plus the uncertainty circle
    assert page.locator("#map circle").count() == len(located["support"]) + 1
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results img')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTEFACTS / "search-page.png", full_page=True)
    (ARTEFACTS / "search-page-timing.json").write_text(
        json.dumps({"page_load_to_first_results_s": round(first_results_s, 3)})
    )


def test_a_clicked_result_becomes_the_query_and_the_url_keeps_it(
    page: Page, service_url: str, photo: Path
) -> None:
    page.goto(service_url + "/")
    _search(page, lambda: page.set_input_files("#photo", photo))
    clicked = page.locator(".result").nth(1)
    chosen = clicked.get_attribute("data-image-id")
    _search(page, clicked.click)

    state = parse_qs(urlparse(page.url).query)
    assert state["image_id"] == [chosen]
    expected = [
        hit["image_id"]
        for hit in _answer(service_url, "/similar", image_id=chosen, k=10)["neighbours"]
    ]
    assert _shown(page) == expected
    assert chosen not in expected  # an indexed image is never its own neighbour
    assert page.locator("#query-caption").inner_text() == chosen

    _search(page, page.reload)
    assert _shown(page) == expected


def test_one_per_building_and_k_reach_the_query(
    page: Page, service_url: str, bundle: LoadedBundle
) -> None:
    chosen = bundle.images.image_id(0)
    page.goto(f"{service_url}/?image_id={chosen}&k=6&group=1")
    page.wait_for_function("() => document.querySelectorAll('.result').length > 0")
    page.wait_for_function(SEARCH_DONE)
    buildings = page.locator(".result").evaluate_all("nodes => nodes.map(n => n.dataset.building)")
    assert len(buildings) == 6
    assert len(set(buildings)) == 6
    expected = _answer(service_url, "/similar", image_id=chosen, k=6, group_by_building=True)
    assert _shown(page) == [hit["image_id"] for hit in expected["neighbours"]]

    _search(page, lambda: page.fill("#k", "3") or page.locator("#k").dispatch_event("change"))
    assert len(_shown(page)) == 3
    assert parse_qs(urlparse(page.url).query)["k"] == ["3"]


def test_a_file_that_is_not_an_image_shows_the_services_reason(
    page: Page, service_url: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photograph")
    page.goto(service_url + "/")
    page.set_input_files("#photo", notes)
    message = page.locator("#message")
    message.wait_for(state="visible")
    assert message.inner_text().startswith("The search failed: 4")
    assert page.locator(".result").count() == 0


def test_the_random_button_searches_from_an_indexed_image(
    page: Page, service_url: str, bundle: LoadedBundle
) -> None:
    page.goto(service_url + "/")
    _search(page, lambda: page.click("#random"))
    chosen = parse_qs(urlparse(page.url).query)["image_id"][0]
    assert chosen in set(bundle.images.image_ids.to_pylist())
    assert page.locator(".result").count() == 10
