"""`rerank` on POST /similar and POST /locate, on the real app over the bundle the real
pipeline published for the tiny city (its originals on disk): the re-ranked order, the
inliers in the answer, and a 4xx with the reason for every bad `rerank` input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.bundle.rerank import DEFAULT_TOP, MAX_TOP
from service.app import create_app
from tests.factories.service_app import ServiceData, service_settings, wait_until_ready


@pytest.fixture(scope="module")
def bundle(tiny_city_bundle: Path) -> LoadedBundle:
    return load_bundle(tiny_city_bundle / (fmt.read_current_version(tiny_city_bundle) or ""))


@pytest.fixture(scope="module")
def client(tiny_city_bundle: Path) -> Iterator[TestClient]:
    settings = service_settings(tiny_city_bundle, max_rerank_candidates=60)
    with TestClient(create_app(settings)) as test_client:
        wait_until_ready(test_client)
        yield test_client


def _image_with_partner(bundle: LoadedBundle) -> str:
    codes = bundle.images.building_code
    row = next(row for row in range(bundle.count) if (codes == codes[row]).sum() > 1)
    return bundle.images.image_id(row)


def test_an_image_id_query_is_reranked_by_inliers(
    client: TestClient, bundle: LoadedBundle
) -> None:
    image_id = _image_with_partner(bundle)
    plain = client.post("/similar", json={"image_id": image_id, "k": 5}).json()["neighbours"]
    assert all(hit["inliers"] is None and hit["rerank_score"] is None for hit in plain)
    answer = client.post("/similar", json={"image_id": image_id, "k": 5, "rerank": True})
    assert answer.status_code == 200, answer.text
    hits = answer.json()["neighbours"]
    assert len(hits) == 5
    assert all(isinstance(hit["inliers"], int) and hit["inliers"] >= 0 for hit in hits)
    scores = [hit["rerank_score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)
    # the 5 returned are the best 5 of the default 20 candidates, not of the plain 5
    wide = client.post("/similar", json={"image_id": image_id, "k": DEFAULT_TOP}).json()
    assert {hit["image_id"] for hit in hits} <= {hit["image_id"] for hit in wide["neighbours"]}


def test_rerank_top_verifies_that_many_and_leaves_the_rest_in_order(
    client: TestClient, bundle: LoadedBundle
) -> None:
    image_id = _image_with_partner(bundle)
    plain = client.post("/similar", json={"image_id": image_id, "k": 8}).json()["neighbours"]
    hits = client.post("/similar", json={"image_id": image_id, "k": 8, "rerank_top": 3}).json()[
        "neighbours"
    ]
    assert all(hit["inliers"] is not None for hit in hits[:3])
    assert [hit["image_id"] for hit in hits[3:]] == [hit["image_id"] for hit in plain[3:]]
    assert all(hit["inliers"] is None for hit in hits[3:])


def test_an_upload_with_rerank_and_locate_with_rerank(
    client: TestClient, bundle: LoadedBundle
) -> None:
    image_id = _image_with_partner(bundle)
    photo = bundle.original_path(bundle.row_of(image_id)).read_bytes()
    answer = client.post(
        "/similar", files={"image": ("q.jpg", photo, "image/jpeg")}, data={"rerank": "true"}
    )
    assert answer.status_code == 200, answer.text
    best = answer.json()["neighbours"][0]
    assert best["image_id"] == image_id and best["inliers"] > 0
    located = client.post("/locate", json={"image_id": image_id, "rerank": True})
    assert located.status_code == 200, located.text
    assert located.json()["lat"] is not None
    batch = client.post(
        "/similar",
        json={"queries": [{"image_id": image_id, "rerank_top": 5}, {"image_id": image_id}]},
    )
    assert batch.status_code == 200, batch.text
    first, second = (result["neighbours"] for result in batch.json()["results"])
    assert first[0]["inliers"] is not None and second[0]["inliers"] is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"vector": [1.0] * 8, "rerank": True}, "rerank needs a photo"),
        ({"rerank_top": 0}, "greater than or equal to 1"),
        ({"rerank_top": MAX_TOP + 1}, f"less than or equal to {MAX_TOP}"),
        ({"rerank_top": 5, "rerank": False}, "rerank is false"),
        ({"rerank": "yes"}, "valid boolean"),
        ({"rerank": 1}, "valid boolean"),
    ],
)
def test_bad_rerank_input_is_a_422_with_the_reason(
    client: TestClient, bundle: LoadedBundle, body: dict, reason: str
) -> None:
    query = {"image_id": _image_with_partner(bundle), **body}
    if "vector" in body:
        query.pop("image_id")
    answer = client.post("/similar", json=query)
    assert answer.status_code == 422, answer.text
    assert reason in answer.json()["detail"]


def test_too_many_candidates_in_one_request_is_a_422(
    client: TestClient, bundle: LoadedBundle
) -> None:
    image_id = _image_with_partner(bundle)
    queries = [{"image_id": image_id, "rerank_top": 20}] * 4
    answer = client.post("/similar", json={"queries": queries})
    assert answer.status_code == 422
    assert "80 candidates in one request exceeds the limit of 60" in answer.json()["detail"]


def test_a_bundle_without_originals_answers_rerank_with_a_422(
    service_data: ServiceData,
) -> None:
    with TestClient(create_app(service_settings(service_data.bundles_dir))) as test_client:
        wait_until_ready(test_client)
        image_id = service_data.city.images.column("image_id")[0].as_py()
        answer = test_client.post("/similar", json={"image_id": image_id, "rerank": True})
        assert answer.status_code == 422
        assert "rerank needs the original photos" in answer.json()["detail"]
        plain = test_client.post("/similar", json={"image_id": image_id})
        assert plain.status_code == 200
