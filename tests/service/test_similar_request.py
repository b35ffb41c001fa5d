"""Every bad input gets a 4xx with a JSON detail naming the problem, never a 500."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from service.app import create_app
from tests.factories.bundles import photo_bytes
from tests.factories.service_app import ServiceData, service_settings, wait_until_ready

IMAGE_ID = "city/1/100/img_00000"
DIM = 16


def _encoded(fmt: str, size: tuple[int, int] = (64, 48), **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 30, 200)).save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({}, 422, "give exactly one of image_id and vector"),
        ({"image_id": IMAGE_ID, "vector": [1.0] * DIM}, 422, "exactly one of image_id and vector"),
        ({"image_id": "no/such/image"}, 404, "unknown image_id 'no/such/image'"),
        ({"image_id": ""}, 422, "image_id: String should have at least 1 character"),
        ({"image_id": 7}, 422, "image_id: Input should be a valid string"),
        ({"vector": [0.5] * 3}, 422, "vector has 3 values, the bundle's embeddings have 16"),
        ({"vector": []}, 422, "vector: List should have at least 1 item"),
        ({"vector": [0.0] * DIM}, 422, "vector is all zeros: it has no direction"),
        ({"vector": ["a"] * DIM}, 422, "vector.0: Input should be a valid number"),
        ({"image_id": IMAGE_ID, "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"image_id": IMAGE_ID, "k": 101}, 422, "k: Input should be less than or equal to 100"),
        ({"image_id": IMAGE_ID, "k": 2.5}, 422, "k: Input should be a valid integer"),
        ({"image_id": IMAGE_ID, "k": True}, 422, "k: Input should be a valid integer"),
        ({"image_id": IMAGE_ID, "k": "5"}, 422, "k: Input should be a valid integer"),
        (
            {"image_id": IMAGE_ID, "group_by_building": "yes"},
            422,
            "group_by_building: Input should be a valid boolean",
        ),
        (
            {"queries": [{"image_id": IMAGE_ID, "k": True}]},
            422,
            "queries.0.k: Input should be a valid integer",
        ),
        ({"image_id": IMAGE_ID, "lat": 50.0}, 422, "go together: lon, radius_m missing"),
        ({"image_id": IMAGE_ID, "lat": 50, "lon": 4}, 422, "go together: radius_m missing"),
        (
            {"image_id": IMAGE_ID, "lat": 91, "lon": 4, "radius_m": 10},
            422,
            "lat: Input should be less than or equal to 90",
        ),
        (
            {"image_id": IMAGE_ID, "lat": 50, "lon": -180.5, "radius_m": 10},
            422,
            "lon: Input should be greater than or equal to -180",
        ),
        (
            {"image_id": IMAGE_ID, "lat": 50, "lon": 4, "radius_m": 0},
            422,
            "radius_m: Input should be greater than 0",
        ),
        (
            {"image_id": IMAGE_ID, "lat": 50, "lon": 4, "radius_m": 100_001},
            422,
            "radius_m: Input should be less than or equal to 100000",
        ),
        (
            {"vector": [1.0] * DIM, "exclude_same_building": True},
            422,
            "exclude_same_building needs an image_id query",
        ),
        ({"image_id": IMAGE_ID, "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
        ({"queries": []}, 422, "queries: List should have at least 1 item"),
        (
            {"queries": [{"image_id": IMAGE_ID}] * 65},
            422,
            "queries: List should have at most 64 items",
        ),
        (
            {"queries": [{"image_id": IMAGE_ID}, {"image_id": IMAGE_ID, "k": -1}]},
            422,
            "queries.1.k: Input should be greater than or equal to 1",
        ),
        (
            {"queries": [{"image_id": IMAGE_ID}, {"image_id": "gone"}]},
            404,
            "queries.1.image_id: unknown image_id 'gone'",
        ),
        (
            {"queries": [{"image_id": "gone"}, {"vector": [1.0] * 5}]},
            422,
            "queries.1.vector has 5 values",
        ),
        ({"queries": [{"image_id": IMAGE_ID}], "k": 3}, 422, "k: Extra inputs are not permitted"),
    ],
)
def test_bad_json_queries(client: TestClient, body: dict, status: int, detail: str) -> None:
    response = client.post("/similar", json=body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("content", "content_type", "status", "detail"),
    [
        (b"{", "application/json", 422, "request body is not valid JSON"),
        (b"[1, 2]", "application/json", 422, "request body must be a JSON object"),
        (b'{"vector": [NaN]}', "application/json", 422, "vector.0: Input should be a finite"),
        (b"\xff\xfe", "application/json", 422, "not valid JSON"),
        (b'{"k": 1' + b"0" * 5000 + b"}", "application/json", 422, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 422, "not valid JSON"),
        (b"image_id=a", "application/x-www-form-urlencoded", 415, "unsupported content type"),
        (b"hello", "text/plain", 415, "unsupported content type 'text/plain'"),
        (b"hello", None, 415, "unsupported content type '(none)'"),
        (b"--x\r\n", "multipart/form-data", 400, "Missing boundary"),
    ],
)
def test_bad_bodies(
    client: TestClient, content: bytes, content_type: str | None, status: int, detail: str
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/similar", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("data", "status", "detail"),
    [
        (b"this is not an image at all", 415, "not a JPEG, PNG or WebP image"),
        (b"", 415, "the uploaded image is empty"),
        (_encoded("GIF"), 415, "not a JPEG, PNG or WebP"),
        (_encoded("BMP"), 415, "not a JPEG, PNG or WebP"),
        (_encoded("TIFF"), 415, "not a JPEG, PNG or WebP"),
        (photo_bytes(3, fmt="JPEG")[:300], 422, "image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, 415, "not a recognised image format"),
        (_encoded("PNG", (8, 40)), 422, "too_small"),
        (_encoded("PNG", (2600, 1600)), 413, "too_large"),
    ],
)
def test_bad_uploads(client: TestClient, data: bytes, status: int, detail: str) -> None:
    response = client.post("/similar", files={"image": ("upload", data, "image/jpeg")})
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    ("files", "status", "detail"),
    [
        ({"k": (None, "3")}, 422, "multipart request needs a file field 'image'"),
        ({"image": (None, "text")}, 422, "form field 'image' must be a file"),
        (
            {"image": ("a.png", photo_bytes(1)), "k": (None, "0")},
            422,
            "k: Input should be greater than or equal to 1",
        ),
        (
            {"image": ("a.png", photo_bytes(1)), "k": (None, "many")},
            422,
            "k: Input should be a valid integer",
        ),
        (
            {"image": ("a.png", photo_bytes(1)), "lat": (None, "50")},
            422,
            "go together: lon, radius_m missing",
        ),
        (
            {"image": ("a.png", photo_bytes(1)), "exclude_same_building": (None, "true")},
            422,
            "exclude_same_building needs an image_id query",
        ),
        (
            {"image": ("a.png", photo_bytes(1)), "image_id": (None, IMAGE_ID)},
            422,
            "image_id: Extra inputs are not permitted",
        ),
        (
            {"image": ("a.png", photo_bytes(1)), "other": ("b.png", photo_bytes(2))},
            400,
            "Too many files",
        ),
    ],
)
def test_bad_forms(client: TestClient, files: dict, status: int, detail: str) -> None:
    response = client.post("/similar", files=files)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_a_repeated_form_field_is_refused(client: TestClient) -> None:
    files = [("image", ("a.png", photo_bytes(1))), ("k", (None, "3")), ("k", (None, "4"))]
    response = client.post("/similar", files=files)
    assert response.status_code == 422
    assert response.json()["detail"] == "form field 'k' is given more than once"


@pytest.fixture(scope="module")
def roomy_client(service_data: ServiceData) -> Iterator[TestClient]:
    """The real app with the default body limits (20 MiB, JSON 4 MiB)."""
    with TestClient(create_app(service_settings(service_data.bundles_dir))) as test_client:
        wait_until_ready(test_client)
        yield test_client


def _measured(client: TestClient, body: bytes) -> tuple[Any, int]:
    """The answer to a JSON POST /similar of BODY and the peak of Python allocations it took."""
    tracemalloc.start()
    try:
        response = client.post(
            "/similar", content=body, headers={"content-type": "application/json"}
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return response, peak


@pytest.mark.parametrize(
    ("element", "queries"),
    [(b'""', 64), (b"{}", 64), (b"NaN", 64), (b"1e999", 64), (b"true", 64), (10**400, 2)],
    ids=["strings", "objects", "nan", "overflowing-float", "booleans", "huge-integers"],
)
def test_a_large_bad_batch_costs_little_and_answers_briefly(
    roomy_client: TestClient, element: bytes | int, queries: int
) -> None:
    # Queries of 4 096 bad values each, 1 to 4 MB of JSON: the worst the limits allow.
    # Each vector costs one error; the answer names ten of them.
    value = element if isinstance(element, bytes) else str(element).encode()
    vector = b"[" + b",".join([value] * 4096) + b"]"
    body = b'{"queries": [' + b",".join([b'{"vector": ' + vector + b"}"] * queries) + b"]}"
    assert len(body) <= 4 * 1024 * 1024
    response, peak = _measured(roomy_client, body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("queries.0.vector.0: ")
    if queries > 10:
        assert f"and {queries - 10} more errors" in detail
    assert len(response.content) < 4_000
    assert peak < 200 * 1024 * 1024, f"{peak / 2**20:.0f} MiB of Python objects"


def test_a_json_body_over_its_limit_is_refused_before_parsing(roomy_client: TestClient) -> None:
    body = b'{"vector": [' + b",".join([b'""'] * (5 * 1024 * 1024 // 3)) + b"]}"
    response, peak = _measured(roomy_client, body)
    assert response.status_code == 413
    assert response.json()["detail"] == "JSON body exceeds the limit of 4194304 bytes"
    assert peak < 4 * len(body)


def test_a_vector_longer_than_any_bundle_is_one_error(roomy_client: TestClient) -> None:
    response = roomy_client.post("/similar", json={"vector": [0.5] * 5000})
    assert response.status_code == 422
    assert (
        response.json()["detail"]
        == "vector: List should have at most 4096 items after validation, not 5000"
    )


def test_a_huge_key_is_not_echoed_whole(roomy_client: TestClient) -> None:
    response = roomy_client.post("/similar", json={"x" * 100_000: 1, "image_id": IMAGE_ID})
    assert response.status_code == 422
    assert len(response.content) < 1_000
