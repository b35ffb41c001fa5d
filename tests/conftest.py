import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests never reach a model hub: a missing local weight must fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from tests.factories.service_app import ServiceData, make_service_data
from tests.factories.tiny_city import TinyCityPipeline, run_tiny_city_pipeline


@pytest.fixture(scope="session")
def tiny_city_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyCityPipeline]:
    """The tiny city through every asset, once per session (about a minute)."""
    yield from run_tiny_city_pipeline(tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="session")
def tiny_city_bundle(
    tiny_city_pipeline: TinyCityPipeline, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A private copy of the bundles folder the pipeline published (`current` included)."""
    copy = tmp_path_factory.mktemp("tiny_city_bundles") / "bundles"
    shutil.copytree(tiny_city_pipeline.layout.bundles_dir, copy)
    return copy


@pytest.fixture(scope="session")
def service_data(tmp_path_factory: pytest.TempPathFactory) -> ServiceData:
    """A tiny ONNX model and a synthetic city published as a bundle (bundle and service tests)."""
    return make_service_data(tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="session")
def city_bundle(service_data: ServiceData) -> LoadedBundle:
    return load_bundle(service_data.bundle_path)


@pytest.fixture(scope="module")
def pipeline(tiny_city_pipeline: TinyCityPipeline) -> TinyCityPipeline:
    return tiny_city_pipeline
