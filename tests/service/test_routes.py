"""/health, /ready and /images of the real app."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from geotriplet_assets.bundle.load import LoadedBundle
from service.app import create_app
from tests.factories.service_app import ServiceData, service_settings


def test_before_a_bundle_only_health_answers(tmp_path: Path) -> None:
    with TestClient(create_app(service_settings(tmp_path))) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json() == {
            "detail": f"no bundle to load: {tmp_path / 'current'} does not exist",
            "last_load_error": None,
            "pointer_problem": f"{tmp_path / 'current'} does not exist",
        }
        similar = client.post("/similar", json={"image_id": "a"})
        assert similar.status_code == 503
        assert "does not exist" in similar.json()["detail"]
        assert client.get("/images/a").status_code == 503


def test_ready_describes_the_bundle(client: TestClient, city_bundle: LoadedBundle) -> None:
    body = client.get("/ready").json()
    assert body["status"] == "ready"
    assert body["bundle_version"] == city_bundle.version
    assert (body["count"], body["embedding_dim"], body["index_type"]) == (1500, 16, "flat")
    assert body["last_load_error"] is None
    assert body["loaded_at"] > 0


def test_image_metadata(client: TestClient, service_data: ServiceData) -> None:
    table = service_data.city.images
    image_id = table.column("image_id")[7].as_py()
    response = client.get(f"/images/{image_id}")
    assert response.status_code == 200
    body = response.json()
    assert body["image_id"] == image_id
    assert body["bundle_version"] == service_data.bundle_path.name
    for column in ("dataset_id", "target_id", "patch_id", "lat", "lon", "split"):
        assert body[column] == table.column(column)[7].as_py()


def test_unknown_image_metadata_is_404(client: TestClient) -> None:
    response = client.get("/images/no/such/image")
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown image_id 'no/such/image'"}
