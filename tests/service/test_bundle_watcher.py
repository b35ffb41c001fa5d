from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from service.bundle import LoadedBundle, load_bundle
from service.bundle_watcher import BundleWatcher, LoadFailure
from tests.service.bundle_factory import point_current
from tests.service.conftest import ServiceData

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
