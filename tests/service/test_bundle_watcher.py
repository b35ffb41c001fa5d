"""The bundle watcher follows `current`; a running app swaps new bundles in, broken ones leave
the old serving, and every request is answered by one bundle from start to end."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from service.app import create_app
from service.bundle_watcher import BundleWatcher, LoadFailure
from tests.factories.bundles import make_city, point_current, write_bundle
from tests.factories.service_app import ServiceData, service_settings, wait_for, wait_until_ready

SECOND = "20300101T000000Z-0000beef"
BROKEN = "20300102T000000Z-0000dead"
MISSING = "20300103T000000Z-00000000"


class Recorder:
    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.failed: list[LoadFailure] = []
        self.attempts: list[str] = []

    def load(self, path: Path) -> LoadedBundle:
        self.attempts.append(path.name)
        return load_bundle(path)


@pytest.fixture
def bundles(service_data: ServiceData, tmp_path: Path) -> Path:
    """A bundles folder holding a copy of the city bundle and no `current` yet."""
    shutil.copytree(service_data.bundle_path, tmp_path / service_data.bundle_path.name)
    return tmp_path


def _watcher(bundles: Path, recorder: Recorder) -> BundleWatcher:
    return BundleWatcher(
        bundles,
        recorder.load,
        poll_interval_s=0.02,
        on_loaded=lambda bundle: recorder.loaded.append(bundle.version),
        on_failed=recorder.failed.append,
    )


def _broken_copy(bundles: Path, good: str, name: str) -> None:
    shutil.copytree(bundles / good, bundles / name)
    (bundles / name / "index.faiss").write_bytes(b"broken")


def test_without_a_pointer_nothing_is_served_and_the_reason_says_why(bundles: Path) -> None:
    recorder = Recorder()
    watcher = _watcher(bundles, recorder)
    watcher.poll_once()
    assert watcher.current is None
    assert watcher.not_ready_reason() == f"no bundle to load: {bundles / 'current'} does not exist"
    (bundles / "current").write_text("../elsewhere\n")
    watcher.poll_once()
    assert "'../elsewhere', not a bundle version" in watcher.not_ready_reason()
    assert recorder.attempts == []


def test_a_new_pointer_is_loaded_once_and_swapped_in(bundles: Path, service_data) -> None:
    recorder = Recorder()
    watcher = _watcher(bundles, recorder)
    good = service_data.bundle_path.name
    point_current(bundles, good)
    watcher.poll_once()
    first = watcher.current
    assert first is not None and first.version == good
    watcher.poll_once()
    assert watcher.current is first
    assert recorder.loaded == [good] and recorder.attempts == [good]
    # A second bundle: the pointer moves, the watcher swaps; the old object is untouched.
    shutil.copytree(bundles / good, bundles / SECOND)
    point_current(bundles, SECOND)
    watcher.poll_once()
    assert watcher.current is not first and watcher.current.path.name == SECOND
    assert first.search is not None and first.path.name == good


def test_a_broken_bundle_keeps_the_old_one_and_is_retried_only_when_current_changes(
    bundles: Path, service_data
) -> None:
    recorder = Recorder()
    watcher = _watcher(bundles, recorder)
    good = service_data.bundle_path.name
    point_current(bundles, good)
    watcher.poll_once()
    serving = watcher.current
    _broken_copy(bundles, good, BROKEN)
    point_current(bundles, BROKEN)
    for _ in range(3):
        watcher.poll_once()
    assert watcher.current is serving
    assert recorder.attempts == [good, BROKEN]
    failure = watcher.last_failure
    assert failure is not None and failure.bundle == BROKEN
    assert "index.faiss" in failure.error
    assert recorder.failed == [failure]
    # Rewriting `current` (new mtime) retries it; repairing it first makes the retry succeed.
    shutil.copy(bundles / good / "index.faiss", bundles / BROKEN / "index.faiss")
    point_current(bundles, BROKEN)
    os.utime(bundles / "current", ns=(time.time_ns(), time.time_ns() + 1_000_000))
    watcher.poll_once()
    assert recorder.attempts == [good, BROKEN, BROKEN]
    assert watcher.current is not serving and watcher.current.path.name == BROKEN
    assert watcher.last_failure is None


def test_pointing_back_at_the_serving_bundle_clears_the_failure(
    bundles: Path, service_data
) -> None:
    recorder = Recorder()
    watcher = _watcher(bundles, recorder)
    good = service_data.bundle_path.name
    point_current(bundles, good)
    watcher.poll_once()
    point_current(bundles, MISSING)
    watcher.poll_once()
    assert "not a directory" in watcher.last_failure.error
    point_current(bundles, good)
    watcher.poll_once()
    assert watcher.last_failure is None and watcher.current.version == good


def test_the_thread_loads_in_the_background_and_stops(bundles: Path, service_data) -> None:
    recorder = Recorder()
    watcher = _watcher(bundles, recorder)
    watcher.start()
    watcher.start()  # idempotent
    try:
        point_current(bundles, service_data.bundle_path.name)
        deadline = time.monotonic() + 10
        while watcher.current is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.current is not None
    finally:
        watcher.stop()
    assert recorder.attempts == [service_data.bundle_path.name]


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


def test_a_broken_pointer_shows_before_an_older_load_failure(
    service_data: ServiceData, tmp_path: Path
) -> None:
    bundles = tmp_path / "bundles"
    shutil.copytree(service_data.bundles_dir, bundles)
    good = service_data.bundle_path.name
    _broken_copy(bundles, good, BROKEN)
    point_current(bundles, BROKEN)
    app = create_app(service_settings(bundles))
    with TestClient(app) as client:
        wait_for(lambda: client.get("/ready").json().get("last_load_error") is not None)
        (bundles / "current").write_text("../../etc/passwd\n")
        wait_for(lambda: client.get("/ready").json().get("pointer_problem") is not None)
        body = client.get("/ready").json()
    assert body["detail"].startswith("no bundle to load: ")
    assert "not a bundle version" in body["pointer_problem"]
    assert body["last_load_error"]["bundle"] == BROKEN
