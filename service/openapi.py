"""The OpenAPI document: /similar's request body is read by hand (JSON or multipart), so its
schemas and examples are added here."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from service.schemas import RequestModels
from service.similar_request import IMAGE_FIELD, JSON_MEDIA_TYPE, MULTIPART_MEDIA_TYPE

_REF = "#/components/schemas/{model}"

JSON_EXAMPLES = {
    "image_id": {
        "summary": "Neighbours of an indexed image, one per building",
        "value": {"image_id": "city/0001/img_00012", "k": 5, "group_by_building": True},
    },
    "geo_filter": {
        "summary": "Within 500 m of a point, leaving out the query's own building",
        "value": {
            "image_id": "city/0001/img_00012",
            "k": 10,
            "lat": 50.8798,
            "lon": 4.7005,
            "radius_m": 500,
            "exclude_same_building": True,
        },
    },
    "vector": {
        "summary": "By embedding (embedding_dim values; shortened here)",
        "value": {"vector": [0.12, -0.03, 0.4, 0.07], "k": 3},
    },
    "batch": {
        "summary": "Several queries at once",
        "value": {
            "queries": [
                {"image_id": "city/0001/img_00012", "k": 3},
                {"image_id": "city/0002/img_00007", "k": 3, "group_by_building": True},
            ]
        },
    },
}


QUERY_PATHS = ("/similar", "/locate")


def install_openapi(app: FastAPI, models: RequestModels) -> None:
    """Make APP's /openapi.json document the two body forms of /similar and /locate."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _build(app, models)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _build(app: FastAPI, models: RequestModels) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    _, definitions = models_json_schema(
        [
            (models.query, "validation"),
            (models.batch, "validation"),
            (models.upload, "validation"),
        ],
        ref_template=_REF,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(definitions["$defs"])
    form = copy.deepcopy(components[models.upload.__name__])
    form["title"] = "SimilarUploadForm"
    # Only image_id queries may exclude their building: the form field is always refused.
    fields = dict(form["properties"])
    del fields["exclude_same_building"]
    form["properties"] = {
        IMAGE_FIELD: {
            "type": "string",
            "format": "binary",
            "description": "The query image: JPEG, PNG or WebP.",
        },
        **fields,
    }
    form["required"] = [IMAGE_FIELD]
    components["SimilarUploadForm"] = form
    _errors_are_plain_details(schema)
    body = {
        "required": True,
        "content": {
            JSON_MEDIA_TYPE: {
                "schema": {
                    "oneOf": [
                        {"$ref": _REF.format(model=models.query.__name__)},
                        {"$ref": _REF.format(model=models.batch.__name__)},
                    ]
                },
                "examples": JSON_EXAMPLES,
            },
            MULTIPART_MEDIA_TYPE: {
                "schema": {"$ref": _REF.format(model="SimilarUploadForm")},
                "encoding": {IMAGE_FIELD: {"contentType": "image/jpeg, image/png, image/webp"}},
            },
        },
    }
    for path in QUERY_PATHS:
        schema["paths"][path]["post"]["requestBody"] = copy.deepcopy(body)
    return schema


def _errors_are_plain_details(schema: dict[str, Any]) -> None:
    """Validation errors are answered as `{"detail": "..."}` (see app._validation_error)."""
    error_ref = _REF.format(model="ErrorResponse")
    for operations in schema["paths"].values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response is not None:
                response["content"] = {JSON_MEDIA_TYPE: {"schema": {"$ref": error_ref}}}
    components = schema["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
