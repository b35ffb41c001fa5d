"""The service on the bundle a real pipeline run published (the tiny synthetic city):
the real backbone + head in ONNX, the pipeline's own index and metadata."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.bundle.search import SearchQuery
from service.app import create_app
from tests.factories.brute_force_search import brute_force
from tests.factories.service_app import service_settings, wait_until_ready
from tests.factories.tiny_city import TinyCityPipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_bundle(tiny_city_bundle: Path) -> LoadedBundle:
    version = (tiny_city_bundle / "current").read_text().strip()
    return load_bundle(tiny_city_bundle / version)


@pytest.fixture(scope="module")
def real_client(tiny_city_bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings(tiny_city_bundle))) as client:
        wait_until_ready(client)
        yield client


def _image_file(city: Path, image_id: str) -> Path:
    (path,) = [p for p in city.glob(f"{image_id}.*") if p.suffix.lower() != ".txt"]
    return path


def test_an_uploaded_photo_finds_its_indexed_self(
    real_client: TestClient, real_bundle: LoadedBundle, tiny_city_pipeline: TinyCityPipeline
) -> None:
    assert real_client.get("/ready").json()["bundle_version"] == real_bundle.version
    for row in range(0, real_bundle.count, max(1, real_bundle.count // 5)):
        image_id = real_bundle.images.image_id(row)
        data = _image_file(tiny_city_pipeline.city, image_id).read_bytes()
        response = real_client.post("/similar", files={"image": ("photo", data)}, data={"k": 3})
        assert response.status_code == 200, response.text
        top = response.json()["neighbours"][0]
        assert top["image_id"] == image_id
        assert top["score"] > 0.999


def test_image_id_queries_answer_the_brute_force_neighbours(
    real_client: TestClient, real_bundle: LoadedBundle
) -> None:
    for row in (0, real_bundle.count // 2, real_bundle.count - 1):
        image_id = real_bundle.images.image_id(row)
        body = real_client.post(
            "/similar", json={"image_id": image_id, "k": 5, "group_by_building": True}
        ).json()
        expected = brute_force(
            real_bundle,
            SearchQuery(
                real_bundle.vector(row), k=5, group_by_building=True, exclude_rows=frozenset({row})
            ),
        )
        assert [n["image_id"] for n in body["neighbours"]] == [
            real_bundle.images.image_id(r) for r, _ in expected
        ]
