"""Request bodies over the limit are refused with a 413, whatever their Content-Length says."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.factories.bundles import photo_bytes


def test_a_body_over_the_limit_is_refused_by_its_content_length(client: TestClient) -> None:
    # The client fixture allows 200 000 bytes.
    data = photo_bytes(1, size=(64, 48)) + b"\0" * 250_000
    response = client.post("/similar", files={"image": ("big.png", data)})
    assert response.status_code == 413
    assert response.json()["detail"] == "request body exceeds the limit of 200000 bytes"


def test_a_streamed_body_over_the_limit_is_refused_as_it_arrives(client: TestClient) -> None:
    def chunks():
        yield b'{"vector": ['
        for _ in range(30_000):
            yield b"0.1, 0.1, 0.1, "
        yield b"0.1]}"

    response = client.post(
        "/similar", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "exceeds the limit of 200000 bytes" in response.json()["detail"]


def test_a_lying_content_length_does_not_get_past_the_limit(client: TestClient) -> None:
    # The body is counted as it arrives, whatever the header said.
    body = json.dumps({"vector": [0.1] * 40_000}).encode()
    response = client.post(
        "/similar",
        content=iter([body[:100], body[100:]]),
        headers={"content-type": "application/json", "content-length": "100"},
    )
    assert response.status_code == 413
