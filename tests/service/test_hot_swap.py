"""A running app follows `current`: new bundles swap in, broken ones leave the old serving,
and every request is answered by one bundle from start to end."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from service.app import create_app
from tests.service.bundle_factory import make_city, point_current, write_bundle
from tests.service.conftest import ServiceData, service_settings, wait_for, wait_until_ready


def test_bundles_swap_in_and_a_broken_one_leaves_the_old_serving(
    service_data: ServiceData, tmp_path: Path
) -> None:
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    city_a = service_data.city
    city_b = make_city(service_data.model_path, buildings=120, photos=0, seed=5, prefix="b-city")
    app = create_app(service_settings(bundles))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 503
        version_a = write_bundle(
            bundles,
            model_path=service_data.model_path,
            vectors=city_a.vectors,
            images=city_a.images,
        ).name
        wait_until_ready(client, version_a)
        query = {"vector": np.ones(16).tolist(), "k": 5}
        answer_a = client.post("/similar", json=query).json()
        assert answer_a["bundle_version"] == version_a

        version_b = write_bundle(
            bundles,
            model_path=service_data.model_path,
            vectors=city_b.vectors,
            images=city_b.images,
        ).name
        wait_until_ready(client, version_b)
        answer_b = client.post("/similar", json=query).json()
        assert answer_b["bundle_version"] == version_b
        assert all(n["image_id"].startswith("b-city/") for n in answer_b["neighbours"])
        assert client.get("/ready").json()["count"] == 600

        # A bundle damaged after publication: hash check fails, B keeps serving.
        broken = bundles / "20990101T000000Z-deadbeef"
        shutil.copytree(bundles / version_b, broken)
        data = bytearray((broken / "vectors.npy").read_bytes())
        data[-1] ^= 0xFF
        (broken / "vectors.npy").write_bytes(bytes(data))
        point_current(bundles, broken.name)
        wait_for(lambda: client.get("/ready").json()["last_load_error"] is not None)
        ready = client.get("/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["bundle_version"] == version_b
        assert body["last_load_error"]["bundle"] == broken.name
        assert "vectors.npy has SHA-256" in body["last_load_error"]["error"]
        assert client.post("/similar", json=query).json() == answer_b
        metrics = client.get("/metrics").text
        assert "geotriplet_bundle_load_failures_total 1.0" in metrics
        assert f'version="{version_b}"' in metrics and f'version="{version_a}"' not in metrics

        # Back to A: the failure is history, A serves again.
        point_current(bundles, version_a)
        wait_until_ready(client, version_a)
        assert client.get("/ready").json()["last_load_error"] is None


def test_requests_during_swaps_never_fail_and_each_uses_one_bundle(
    service_data: ServiceData, tmp_path: Path
) -> None:
    bundles = tmp_path / "bundles"
    city_b = make_city(service_data.model_path, buildings=100, photos=0, seed=9, prefix="b-city")
    version_a = write_bundle(
        bundles,
        model_path=service_data.model_path,
        vectors=service_data.city.vectors,
        images=service_data.city.images,
    ).name
    version_b = write_bundle(
        bundles, model_path=service_data.model_path, vectors=city_b.vectors, images=city_b.images
    ).name
    prefix = {version_a: "city/", version_b: "b-city/"}
    point_current(bundles, version_a)
    app = create_app(service_settings(bundles, poll_interval_s=0.01))
    answers: list[tuple[int, dict]] = []
    stop = threading.Event()
    with TestClient(app) as client:
        wait_until_ready(client, version_a)

        def hammer() -> None:
            while not stop.is_set():
                response = client.post("/similar", json={"vector": [1.0] * 16, "k": 20})
                answers.append((response.status_code, response.json()))

        workers = [threading.Thread(target=hammer) for _ in range(2)]
        for worker in workers:
            worker.start()
        try:
            for version in (version_b, version_a, version_b):
                point_current(bundles, version)
                wait_until_ready(client, version)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
    assert len(answers) > 5
    assert {status for status, _ in answers} == {200}
    assert {body["bundle_version"] for _, body in answers} == {version_a, version_b}
    for _, body in answers:
        expected = prefix[body["bundle_version"]]
        assert all(n["image_id"].startswith(expected) for n in body["neighbours"])
