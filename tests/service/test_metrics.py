"""/metrics of the real app: requests counted by route and status, each stage timed."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from tests.factories.service_app import ServiceData, service_settings, wait_until_ready


def _samples(client: TestClient) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


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


def _disconnecting(body: bytes):
    """An ASGI `receive` whose client sends the first bytes of BODY, then hangs up."""
    messages = iter(
        [
            {"type": "http.request", "body": body[:10], "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict:
        return next(messages)

    return receive


def test_a_client_that_disconnects_mid_body_is_counted_apart_and_logs_no_error(
    service_data: ServiceData, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"image_id": "city/1/100/img_00000"}).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/similar",
        "raw_path": b"/similar",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    app = create_app(service_settings(service_data.bundles_dir))
    with TestClient(app) as client, caplog.at_level(logging.INFO):
        wait_until_ready(client)
        for _ in range(3):
            client.portal.call(app, scope, _disconnecting(body), send)
        samples = _samples(client)
    assert sent == []
    by_status = {
        dict(labels)["status"]: value
        for (name, labels), value in samples.items()
        if name == "geotriplet_requests_total" and dict(labels)["endpoint"] == "/similar"
    }
    assert by_status == {"499": 3}
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
