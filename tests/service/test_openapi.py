"""The OpenAPI document: /docs shows both request forms with examples, and schemathesis
fuzzes the app against the document: never a 5xx, and every answer is one it declares.

(`schemathesis.pytest.from_fixture` does not run under this pytest version, so the cases
are drawn from the schema's Hypothesis strategy directly: the same generation and checks.)
"""

from __future__ import annotations

import copy
import re

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.app import create_app
from tests.factories.service_app import ServiceData, service_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_app(service_data: ServiceData) -> FastAPI:
    app = create_app(service_settings(service_data.bundles_dir, poll_interval_s=1.0))
    # Loaded now: schemathesis starts the lifespan itself, and the watcher then finds the
    # same bundle already serving.
    app.state.watcher.poll_once()
    assert app.state.watcher.current is not None
    return app


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


@pytest.fixture(scope="module")
def strategies(
    api_schema: schemathesis.BaseSchema, fuzzed_app: FastAPI, service_data: ServiceData
) -> dict[str, st.SearchStrategy]:
    """The app's own document, positive and negative; and a copy of it narrowed to vectors
    of the bundle's length and indexed image ids, so that valid cases reach the search."""
    narrowed = copy.deepcopy(fuzzed_app.openapi())
    query = narrowed["components"]["schemas"]["SimilarQuery"]["properties"]
    query["vector"].update(minItems=16, maxItems=16)
    query["image_id"] = {"enum": list(service_data.city.photos)}
    searchable = schemathesis.openapi.from_dict(narrowed)
    searchable.app = fuzzed_app
    return {
        "positive": api_schema.as_strategy(GenerationMode.POSITIVE),
        "negative": api_schema.as_strategy(GenerationMode.NEGATIVE),
        "searchable": searchable["/similar"]["POST"].as_strategy(GenerationMode.POSITIVE),
    }


@pytest.mark.parametrize("mode", ["positive", "negative", "searchable"])
@given(data=st.data())
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
def test_the_api_never_answers_a_server_error(
    strategies: dict[str, st.SearchStrategy], mode: str, data: st.DataObject
) -> None:
    case = data.draw(strategies[mode])
    case.call_and_validate(checks=CHECKS)


def test_the_docs_show_both_request_forms_with_examples(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/similar"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    assert {"image_id", "vector", "batch", "geo_filter"} <= set(
        body["application/json"]["examples"]
    )
    components = schema["components"]["schemas"]
    assert components["SimilarQuery"]["properties"]["k"]["maximum"] == 100
    assert components["SimilarBatch"]["properties"]["queries"]["maxItems"] == 64
    assert components["SimilarUploadForm"]["required"] == ["image"]
    assert "/images/{image_id}" in schema["paths"]


def test_the_docs_pages_load_nothing_from_another_host(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        sources = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", html)
        assert sources, page
        for source in sources:
            assert source.startswith("/"), f"{page} loads {source}"
            assert client.get(source).status_code == 200, source
        assert not re.search(r"https?://", html), f"{page} names another host"
