from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.factories.service_app import ServiceData, service_settings, wait_until_ready


@pytest.fixture(scope="module")
def client(service_data: ServiceData) -> Iterator[TestClient]:
    """The real app on the city bundle, ready."""
    app = create_app(service_settings(service_data.bundles_dir, max_upload_bytes=200_000))
    with TestClient(app) as test_client:
        wait_until_ready(test_client)
        yield test_client
