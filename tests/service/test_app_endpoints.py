"""/health, /ready, /metrics, /images and the docs of the real app."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.bundle import LoadedBundle
from tests.service.conftest import ServiceData, service_settings, wait_until_ready


def _samples(client: TestClient) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_before_a_bundle_only_health_answers(tmp_path: Path) -> None:
    with TestClient(create_app(service_settings(tmp_path))) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json() == {
            "detail": f"no bundle to load: {tmp_path / 'current'} does not exist",
            "last_load_error": None,
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


def test_metrics_count_requests_and_time_each_stage(service_data: ServiceData) -> None:
    app = create_app(service_settings(service_data.bundles_dir))
    with TestClient(app) as client:
        version = wait_until_ready(client)["bundle_version"]
        image_id, photo = next(iter(service_data.city.photos.items()))
        assert client.post("/similar", files={"image": ("q.png", photo)}).status_code == 200
        assert client.post("/similar", json={"image_id": image_id}).status_code == 200
        assert client.post("/similar", json={"image_id": "nope"}).status_code == 404
        assert client.get(f"/images/{image_id}").status_code == 200
        assert client.get("/images/x/y").status_code == 404
        assert client.get("/no/such/route").status_code == 404
        samples = _samples(client)

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert value("geotriplet_stage_seconds_count", stage="decode") == 1
    assert value("geotriplet_stage_seconds_count", stage="embed") == 1
    assert value("geotriplet_stage_seconds_count", stage="search") == 2
    assert value("geotriplet_stage_seconds_sum", stage="embed") > 0
    assert value("geotriplet_requests_total", endpoint="/similar", status="200") == 2
    assert value("geotriplet_requests_total", endpoint="/similar", status="404") == 1
    image_route = "/images/{image_id:path}"
    assert value("geotriplet_requests_total", endpoint=image_route, status="200") == 1
    assert value("geotriplet_requests_total", endpoint=image_route, status="404") == 1
    assert value("geotriplet_requests_total", endpoint="unmatched", status="404") == 1
    assert value("geotriplet_request_seconds_count", endpoint="/similar") == 3
    assert value("geotriplet_bundle_info", version=version, count="1500", index_type="flat") == 1
    assert value("geotriplet_bundle_vectors") == 1500
    assert value("geotriplet_bundle_load_failures_total") == 0


def test_the_413_of_the_body_limit_is_counted(service_data: ServiceData) -> None:
    app = create_app(service_settings(service_data.bundles_dir, max_upload_bytes=100))
    with TestClient(app) as client:
        response = client.post("/similar", json={"vector": [0.5] * 100})
        assert response.status_code == 413
        samples = _samples(client)
    assert (
        samples[
            (
                "geotriplet_requests_total",
                frozenset({("status", "413"), ("endpoint", "unmatched")}),
            )
        ]
        == 1
    )


def test_the_docs_show_both_request_forms_with_examples(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/similar"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert {"image_id", "vector", "batch", "geo_filter"} <= set(
        body["application/json"]["examples"]
    )
    components = schema["components"]["schemas"]
    assert components["SimilarQuery"]["properties"]["k"]["maximum"] == 100
    assert components["SimilarBatch"]["properties"]["queries"]["maxItems"] == 64
    assert components["SimilarUploadForm"]["required"] == ["image"]
    assert "/images/{image_id}" in schema["paths"]
