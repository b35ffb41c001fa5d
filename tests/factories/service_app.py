"""The service's test bundle and settings, and waiting for an app to serve a bundle."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient

from service.settings import ServiceSettings
from tests.factories.bundles import City, make_city, write_bundle, write_tiny_model


@dataclass(frozen=True)
class ServiceData:
    model_path: Path
    city: City
    bundles_dir: Path
    bundle_path: Path


def make_service_data(root: Path) -> ServiceData:
    """A tiny model and a 1 500-image city published as a bundle under ROOT."""
    model_path = root / "model.onnx"
    write_tiny_model(model_path)
    city = make_city(model_path)
    bundles_dir = root / "bundles"
    bundle_path = write_bundle(
        bundles_dir, model_path=model_path, vectors=city.vectors, images=city.images
    )
    return ServiceData(model_path, city, bundles_dir, bundle_path)


def wait_until_ready(
    client: TestClient, version: str | None = None, timeout_s: float = 20.0
) -> dict:
    """The /ready body once the app serves VERSION (or any bundle)."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get("/ready")
        body = response.json()
        if response.status_code == 200 and version in (None, body["bundle_version"]):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready with {version}: {response.status_code} {body}")
        time.sleep(0.02)


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def service_settings(bundles_dir: Path, **overrides: object) -> ServiceSettings:
    values: dict[str, object] = {"bundles_dir": bundles_dir, "poll_interval_s": 0.05}
    values.update(overrides)
    return ServiceSettings(**values)
