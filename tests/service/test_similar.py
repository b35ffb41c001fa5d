"""POST /similar through the real app on a real bundle: every query form and option."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from geotriplet_assets.bundle.load import LoadedBundle
from geotriplet_assets.bundle.search import GeoFilter, SearchQuery
from tests.factories.brute_force_search import brute_force
from tests.factories.bundles import CITY_CENTRE
from tests.factories.service_app import ServiceData

NEIGHBOUR_FIELDS = {
    "image_id",
    "dataset_id",
    "target_id",
    "lat",
    "lon",
    "score",
    "inliers",
    "rerank_score",
}


def _ids(bundle: LoadedBundle, hits: list[tuple[int, float]]) -> list[str]:
    return [bundle.images.image_id(row) for row, _ in hits]


def _image_id(bundle: LoadedBundle, row: int) -> str:
    return bundle.images.image_id(row)


def test_an_image_id_query_answers_its_neighbours_but_never_itself(
    client: TestClient, city_bundle: LoadedBundle
) -> None:
    image_id = _image_id(city_bundle, 300)
    response = client.post("/similar", json={"image_id": image_id})
    assert response.status_code == 200
    body = response.json()
    assert body["bundle_version"] == city_bundle.version
    neighbours = body["neighbours"]
    assert len(neighbours) == 10  # default_k
    assert all(set(n) == NEIGHBOUR_FIELDS for n in neighbours)
    assert image_id not in [n["image_id"] for n in neighbours]
    expected = brute_force(
        city_bundle, SearchQuery(city_bundle.vector(300), k=10, exclude_rows=frozenset({300}))
    )
    assert [n["image_id"] for n in neighbours] == _ids(city_bundle, expected)
    assert [n["score"] for n in neighbours] == [score for _, score in expected]
    record = city_bundle.image_record(expected[0][0])
    assert {key: neighbours[0][key] for key in ("dataset_id", "target_id", "lat", "lon")} == {
        key: record[key] for key in ("dataset_id", "target_id", "lat", "lon")
    }


def test_a_vector_query_is_normalised_and_matches_brute_force(
    client: TestClient, city_bundle: LoadedBundle
) -> None:
    vector = city_bundle.vector(77)
    response = client.post("/similar", json={"vector": (3.0 * vector).tolist(), "k": 4})
    assert response.status_code == 200
    neighbours = response.json()["neighbours"]
    expected = brute_force(city_bundle, SearchQuery(vector, k=4))
    assert [n["image_id"] for n in neighbours] == _ids(city_bundle, expected)
    assert neighbours[0]["image_id"] == _image_id(city_bundle, 77)
    assert abs(neighbours[0]["score"] - 1.0) < 1e-3  # float16 rows (vectors_dtype)
    # Any finite non-zero vector has a direction, however large its values.
    huge = client.post(
        "/similar", json={"vector": (1e307 * vector.astype(float)).tolist(), "k": 4}
    )
    assert [n["image_id"] for n in huge.json()["neighbours"]] == _ids(city_bundle, expected)


def test_an_uploaded_image_finds_itself_first(
    client: TestClient, service_data: ServiceData
) -> None:
    for image_id, data in service_data.city.photos.items():
        kind = "image/jpeg" if data[:2] == b"\xff\xd8" else "image/png"
        response = client.post("/similar", files={"image": ("query", data, kind)}, data={"k": "3"})
        assert response.status_code == 200, response.text
        neighbours = response.json()["neighbours"]
        assert len(neighbours) == 3
        assert neighbours[0]["image_id"] == image_id
        assert neighbours[0]["score"] > 0.999  # against float16 rows (vectors_dtype)


def test_an_uploaded_webp_is_accepted(client: TestClient, service_data: ServiceData) -> None:
    import io

    from PIL import Image

    image_id, data = next(iter(service_data.city.photos.items()))
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, format="WEBP", lossless=True)
    response = client.post("/similar", files={"image": ("q.webp", buffer.getvalue())})
    assert response.status_code == 200, response.text
    assert response.json()["neighbours"][0]["image_id"] == image_id


def test_a_tall_strip_within_the_pixel_limit_is_answered(client: TestClient) -> None:
    import io

    import numpy as np
    from PIL import Image

    # 16 x 240 000 = 3.8 MP, inside the bundle's 4 MP limit; resized whole it would be
    # 36 x 540 000 pixels. A compressible PNG: the upload is small.
    rows = np.linspace(0, 255, 240_000, dtype=np.uint8)[:, None, None]
    strip = Image.fromarray(np.broadcast_to(rows, (240_000, 16, 3)).copy())
    buffer = io.BytesIO()
    strip.save(buffer, format="PNG")
    assert len(buffer.getvalue()) < 200_000
    response = client.post("/similar", files={"image": ("strip.png", buffer.getvalue())})
    assert response.status_code == 200, response.text
    assert len(response.json()["neighbours"]) == 10


def test_upload_form_fields_filter_and_group(
    client: TestClient, service_data: ServiceData, city_bundle: LoadedBundle
) -> None:
    image_id, data = next(iter(service_data.city.photos.items()))
    record = city_bundle.image_record(city_bundle.row_of(image_id))
    fields = {
        "k": "6",
        "lat": str(record["lat"]),
        "lon": str(record["lon"]),
        "radius_m": "1500",
        "group_by_building": "true",
        "exclude_same_building": "",  # an empty form field counts as absent
    }
    response = client.post("/similar", files={"image": ("q.png", data)}, data=fields)
    assert response.status_code == 200, response.text
    neighbours = response.json()["neighbours"]
    query = SearchQuery(
        city_bundle.vector(city_bundle.row_of(image_id)),
        k=6,
        geo=GeoFilter(record["lat"], record["lon"], 1500.0),
        group_by_building=True,
    )
    assert [n["image_id"] for n in neighbours] == _ids(
        city_bundle, brute_force(city_bundle, query)
    )


def test_geo_filter_group_and_building_exclusion_match_brute_force(
    client: TestClient, city_bundle: LoadedBundle
) -> None:
    row = 512
    query = {
        "image_id": _image_id(city_bundle, row),
        "k": 8,
        "lat": CITY_CENTRE[0],
        "lon": CITY_CENTRE[1],
        "radius_m": 2500,
        "group_by_building": True,
        "exclude_same_building": True,
    }
    neighbours = client.post("/similar", json=query).json()["neighbours"]
    expected = brute_force(
        city_bundle,
        SearchQuery(
            city_bundle.vector(row),
            k=8,
            geo=GeoFilter(CITY_CENTRE[0], CITY_CENTRE[1], 2500.0),
            group_by_building=True,
            exclude_rows=frozenset({row}),
            exclude_building=city_bundle.building(row),
        ),
    )
    assert [n["image_id"] for n in neighbours] == _ids(city_bundle, expected)
    building = city_bundle.building(row)
    assert all((n["dataset_id"], n["target_id"]) != building for n in neighbours)
    buildings = {(n["dataset_id"], n["target_id"]) for n in neighbours}
    assert len(buildings) == len(neighbours) == 8


def test_same_building_images_come_back_unless_excluded(
    client: TestClient, city_bundle: LoadedBundle
) -> None:
    row = 600  # building of rows 600..604
    building = city_bundle.building(row)
    plain = client.post("/similar", json={"image_id": _image_id(city_bundle, row), "k": 5})
    same = [n for n in plain.json()["neighbours"] if (n["dataset_id"], n["target_id"]) == building]
    assert same
    excluded = client.post(
        "/similar",
        json={"image_id": _image_id(city_bundle, row), "k": 5, "exclude_same_building": True},
    )
    assert all(
        (n["dataset_id"], n["target_id"]) != building for n in excluded.json()["neighbours"]
    )


def test_a_batch_answers_each_query_as_alone(
    client: TestClient, city_bundle: LoadedBundle
) -> None:
    queries = [
        {"image_id": _image_id(city_bundle, 10), "k": 3},
        {"vector": city_bundle.vector(20).tolist(), "k": 5, "group_by_building": True},
        {
            "image_id": _image_id(city_bundle, 30),
            "lat": CITY_CENTRE[0],
            "lon": CITY_CENTRE[1],
            "radius_m": 1000,
        },
    ]
    response = client.post("/similar", json={"queries": queries})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"bundle_version", "results"}
    assert body["bundle_version"] == city_bundle.version
    singles = [client.post("/similar", json=query).json()["neighbours"] for query in queries]
    assert [result["neighbours"] for result in body["results"]] == singles
    assert [len(result["neighbours"]) for result in body["results"]] == [3, 5, 10]


def test_a_batch_of_one_still_answers_results(client: TestClient, city_bundle) -> None:
    body = client.post(
        "/similar", json={"queries": [{"image_id": _image_id(city_bundle, 1)}]}
    ).json()
    assert len(body["results"]) == 1 and len(body["results"][0]["neighbours"]) == 10


def test_image_ids_with_slashes_and_unicode_round_trip(client: TestClient, city_bundle) -> None:
    image_id = _image_id(city_bundle, 0)
    assert "/" in image_id
    body = client.get(f"/images/{image_id}").json()
    assert body["image_id"] == image_id
    scores = [
        n["score"]
        for n in client.post("/similar", json={"image_id": image_id}).json()["neighbours"]
    ]
    assert scores == sorted(scores, reverse=True)
    assert np.isfinite(scores).all()
