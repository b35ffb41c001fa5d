from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import ServiceSettings


def test_defaults() -> None:
    settings = ServiceSettings()
    assert settings.bundles_dir == Path("data/bundles")
    assert (settings.default_k, settings.max_k, settings.max_batch) == (10, 100, 64)
    assert settings.max_upload_bytes == 20 * 1024 * 1024
    assert settings.max_pixels == 40_000_000
    assert settings.max_radius_m == 100_000
    assert settings.verify_hashes is True
    assert settings.onnx_threads is None and settings.search_threads == 1


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOTRIPLET_SERVICE_BUNDLES_DIR", "/srv/bundles")
    monkeypatch.setenv("GEOTRIPLET_SERVICE_MAX_K", "50")
    monkeypatch.setenv("GEOTRIPLET_SERVICE_VERIFY_HASHES", "false")
    monkeypatch.setenv("GEOTRIPLET_SERVICE_ONNX_THREADS", "2")
    settings = ServiceSettings()
    assert settings.bundles_dir == Path("/srv/bundles")
    assert settings.max_k == 50
    assert settings.verify_hashes is False
    assert settings.onnx_threads == 2


def test_null_in_the_environment_lets_faiss_use_every_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GEOTRIPLET_SERVICE_SEARCH_THREADS", "null")
    assert ServiceSettings().search_threads is None


def test_inconsistent_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOTRIPLET_SERVICE_DEFAULT_K", "20")
    monkeypatch.setenv("GEOTRIPLET_SERVICE_MAX_K", "10")
    with pytest.raises(ValidationError, match="default_k \\(20\\) exceeds max_k \\(10\\)"):
        ServiceSettings()
    with pytest.raises(ValidationError, match="poll_interval_s"):
        ServiceSettings(default_k=1, poll_interval_s=0)
