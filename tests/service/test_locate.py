"""POST /locate on the real app: the same query forms as /similar, answered with the bundle's
estimate from exactly /similar's hits, a calibrated confidence, and the same 4xx for bad input.
(How good the estimate is, is measured on real photos by the retrieval report: this city's
vectors are random, so the densest cluster is often another building's.)"""

from __future__ import annotations

from fastapi.testclient import TestClient

from geotriplet_assets.bundle.load import LoadedBundle
from geotriplet_assets.bundle.search import Neighbour
from geotriplet_assets.geodesy import great_circle_m
from tests.factories.service_app import ServiceData


def _hits(client: TestClient, **query: object) -> list[Neighbour]:
    """The hits /similar gives for QUERY, as the bundle's Neighbour records."""
    answer = client.post("/similar", **query).json()
    return [
        Neighbour(
            0, n["image_id"], n["dataset_id"], n["target_id"], n["lat"], n["lon"], n["score"]
        )
        for n in answer["neighbours"]
    ]


def _expected(bundle: LoadedBundle, hits: list[Neighbour]) -> dict:
    place = bundle.locate(hits)
    assert place is not None
    return {
        "lat": place.lat,
        "lon": place.lon,
        "uncertainty_m": place.uncertainty_m,
        "confidence": place.confidence,
        "support": [hit.image_id for hit in place.support],
    }


def _answered(body: dict) -> dict:
    return {
        key: [hit["image_id"] for hit in body[key]] if key == "support" else body[key]
        for key in ("lat", "lon", "uncertainty_m", "confidence", "support")
    }


def test_an_uploaded_photo_is_located_at_its_building(
    client: TestClient, service_data: ServiceData, city_bundle: LoadedBundle
) -> None:
    image_id, data = next(iter(service_data.city.photos.items()))
    answer = client.post("/locate", files={"image": ("q.png", data)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {
        "bundle_version", "lat", "lon", "uncertainty_m", "confidence", "calibrated", "support",
    }  # fmt: skip
    assert body["bundle_version"] == city_bundle.version
    hits = _hits(client, files={"image": ("q.png", data)}, data={"k": "20"})
    assert _answered(body) == _expected(city_bundle, hits)
    assert 0.0 <= body["confidence"] <= 1.0 and body["calibrated"] is True
    support = [(hit["lat"], hit["lon"]) for hit in body["support"]]
    assert all(great_circle_m(lat, lon, body["lat"], body["lon"]) <= 100 for lat, lon in support)
    assert hits[0].image_id == image_id


def test_image_id_vector_and_batch_queries(client: TestClient, city_bundle: LoadedBundle) -> None:
    image_id = city_bundle.images.image_id(20)
    vector = city_bundle.vector(20).tolist()
    single = client.post("/locate", json={"image_id": image_id, "k": 10}).json()
    assert image_id not in [hit["image_id"] for hit in single["support"]]
    hits = _hits(client, json={"image_id": image_id, "k": 10})
    assert _answered(single) == _expected(city_bundle, hits)
    batch = client.post(
        "/locate", json={"queries": [{"image_id": image_id, "k": 10}, {"vector": vector}]}
    )
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert results[0]["lat"] == single["lat"] and len(results) == 2


def test_excluding_the_own_building_locates_from_the_neighbours(
    client: TestClient, city_bundle: LoadedBundle
) -> None:
    image_id = city_bundle.images.image_id(40)
    building = city_bundle.building(40)
    answer = client.post(
        "/locate", json={"image_id": image_id, "exclude_same_building": True}
    ).json()
    assert all((hit["dataset_id"], hit["target_id"]) != building for hit in answer["support"])


def test_no_hit_gives_an_empty_estimate_and_bad_input_a_4xx(client: TestClient) -> None:
    empty = client.post(
        "/locate", json={"vector": [1.0] * 16, "lat": -45.0, "lon": 170.0, "radius_m": 10.0}
    )
    assert empty.status_code == 200
    assert empty.json()["lat"] is None and empty.json()["support"] == []
    assert client.post("/locate", json={"image_id": "no/such"}).status_code == 404
    assert client.post("/locate", json={"vector": [1.0] * 3}).status_code == 422
    assert client.post("/locate", json={"image_id": "x", "k": 0}).status_code == 422
    assert (
        client.post("/locate", content=b"x", headers={"content-type": "text/plain"}).status_code
        == 415
    )


def test_the_bundle_carries_a_calibration_measured_on_its_val_split(
    city_bundle: LoadedBundle,
) -> None:
    locate = city_bundle.manifest.locate
    assert locate.calibration is not None and locate.calibration.queries > 0
    assert city_bundle.manifest.raw["locate"]["k"] == locate.k == 20
