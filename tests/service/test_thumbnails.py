"""GET /images/{image_id}/thumbnail: JPEGs made from the originals the bundle records, with
ETag and Cache-Control, cached, and a 404 with the reason whenever there is no original."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from geotriplet_assets.bundle.manifest import describe_files
from service.app import create_app
from tests.factories.bundles import write_bundle
from tests.factories.service_app import ServiceData, service_settings, wait_until_ready


@pytest.fixture(scope="module")
def originals(service_data: ServiceData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundles folder whose bundle records originals for the city's photos."""
    root = tmp_path_factory.mktemp("thumbnails")
    photos = root / "photos"
    city = service_data.city
    paths = []
    for image_id in city.images.column("image_id").to_pylist():
        relative = f"{image_id}.img"
        if image_id in city.photos:
            (photos / relative).parent.mkdir(parents=True, exist_ok=True)
            (photos / relative).write_bytes(city.photos[image_id])
        paths.append(relative)
    images = city.images.append_column("path", pa.array(paths, pa.string()))
    write_bundle(
        root / "bundles",
        model_path=service_data.model_path,
        vectors=city.vectors,
        images=images,
        images_root=photos,
    )
    return root


@pytest.fixture(scope="module")
def client(originals: Path) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings(originals / "bundles"))) as test_client:
        wait_until_ready(test_client)
        yield test_client


def test_a_thumbnail_is_a_jpeg_of_the_original_scaled_to_fit(
    client: TestClient, service_data: ServiceData
) -> None:
    image_id = next(iter(service_data.city.photos))
    response = client.get(f"/images/{image_id}/thumbnail", params={"size": 64})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == "public, max-age=3600"
    with Image.open(io.BytesIO(response.content)) as thumbnail:
        assert thumbnail.format == "JPEG" and max(thumbnail.size) == 64
    again = client.get(
        f"/images/{image_id}/thumbnail",
        params={"size": 64},
        headers={"if-none-match": response.headers["etag"]},
    )
    assert again.status_code == 304 and again.content == b""
    assert len(client.app.state.thumbnails._cache) == 1  # made once


def test_no_original_unknown_ids_and_bad_sizes_are_4xx_with_reasons(
    client: TestClient, service_data: ServiceData
) -> None:
    indexed = service_data.city.images.column("image_id").to_pylist()
    without_photo = next(i for i in indexed if i not in service_data.city.photos)
    missing = client.get(f"/images/{without_photo}/thumbnail")
    assert missing.status_code == 404
    assert "is not available here" in missing.json()["detail"]
    assert client.get("/images/no/such/thumbnail").status_code == 404
    assert client.get("/images/../../etc/passwd/thumbnail").status_code == 404
    image_id = next(iter(service_data.city.photos))
    for size in (10, 1000, "big"):
        assert (
            client.get(f"/images/{image_id}/thumbnail", params={"size": size}).status_code == 422
        )


def test_a_bundle_without_originals_says_so(client: TestClient, service_data: ServiceData) -> None:
    with TestClient(create_app(service_settings(service_data.bundles_dir))) as plain:
        wait_until_ready(plain)
        image_id = next(iter(service_data.city.photos))
        response = plain.get(f"/images/{image_id}/thumbnail")
    assert response.status_code == 404
    assert "does not record where its original photos are" in response.json()["detail"]


def test_a_path_that_leaves_the_root_is_refused(originals: Path, tmp_path: Path) -> None:
    bundles = tmp_path / "bundles"
    shutil.copytree(originals / "bundles", bundles)
    current = (bundles / "current").read_text().strip()
    table = pa.parquet.read_table(bundles / current / "images.parquet")
    paths = table.column("path").to_pylist()
    paths[0] = "../../../etc/hostname"
    table = table.set_column(table.schema.get_field_index("path"), "path", pa.array(paths))
    pa.parquet.write_table(table, bundles / current / "images.parquet")
    manifest = json.loads((bundles / current / "manifest.json").read_text())
    manifest["files"] = describe_files(bundles / current)  # as if published so
    (bundles / current / "manifest.json").write_text(json.dumps(manifest))
    settings = service_settings(bundles)
    with TestClient(create_app(settings)) as client:
        wait_until_ready(client)
        image_id = table.column("image_id")[0].as_py()
        response = client.get(f"/images/{image_id}/thumbnail")
    assert response.status_code == 404 and "lies outside" in response.json()["detail"]
