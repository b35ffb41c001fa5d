"""Request and response models of the HTTP API.

The request models' limits (k, radius, batch size) come from the settings, so
`request_models(limits)` builds the concrete classes of one app; their JSON schemas are
what /openapi.json documents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from geotriplet_assets.bundle.rerank import DEFAULT_TOP, MAX_TOP
from geotriplet_assets.bundle.search import GeoFilter

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
MAX_DESCRIBED_ERRORS = 10
MAX_LOCATION_CHARS = 120


@dataclass(frozen=True)
class QueryLimits:
    default_k: int
    max_k: int
    max_radius_m: float
    max_batch: int
    max_vector_length: int


_GEO_FIELDS = ("lat", "lon", "radius_m")


def _geo_fields_together(schema: dict[str, Any]) -> None:
    """Document that lat, lon and radius_m come together. Optional fields are documented as
    absent or a value (null is also accepted as absent, but a null is not a value given)."""
    schema["properties"] = {
        name: _without_null(field) for name, field in schema["properties"].items()
    }
    schema["dependentRequired"] = {
        name: [other for other in _GEO_FIELDS if other != name] for name in _GEO_FIELDS
    }


def _one_query_form(schema: dict[str, Any]) -> None:
    _geo_fields_together(schema)
    schema["oneOf"] = [
        {"required": ["image_id"], "not": {"required": ["vector"]}},
        {
            "required": ["vector"],
            "not": {"required": ["image_id"]},
            "properties": {"exclude_same_building": {"const": False}},
        },
    ]


def _without_null(field: dict[str, Any]) -> dict[str, Any]:
    options = [option for option in field.get("anyOf", []) if option.get("type") != "null"]
    if len(options) != 1:
        return field
    plain = {key: value for key, value in field.items() if key not in ("anyOf", "default")}
    return {**options[0], **plain}


class SearchParameters(BaseModel):
    """How many neighbours and which ones: the fields every query form shares."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_geo_fields_together)

    k: int | None = Field(None, ge=1, description="Number of neighbours (default: default_k).")
    lat: float | None = Field(
        None, ge=-90, le=90, allow_inf_nan=False, description="Filter centre latitude, degrees."
    )
    lon: float | None = Field(
        None, ge=-180, le=180, allow_inf_nan=False, description="Filter centre longitude, degrees."
    )
    radius_m: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="Filter radius, great-circle metres."
    )
    group_by_building: bool = Field(
        False, description="Return at most one image, the best, per building (target)."
    )
    exclude_same_building: bool = Field(
        False, description="Leave out the query image's building (image_id queries only)."
    )
    rerank: bool = Field(
        False,
        description="Re-score the best rerank_top candidates by local-feature matching "
        "(ORB, ratio test, RANSAC homography) between the query photo and each candidate's "
        "original photo. Needs a photo (an upload or an image_id) and a bundle that records "
        "its originals.",
    )
    rerank_top: int | None = Field(
        None,
        ge=1,
        le=MAX_TOP,
        description=f"Candidates re-scored, 1 to {MAX_TOP} (default {DEFAULT_TOP}); giving it "
        "turns rerank on.",
    )

    @model_validator(mode="after")
    def _geo_filter_complete(self) -> SearchParameters:
        given = {name: getattr(self, name) is not None for name in _GEO_FIELDS}
        if any(given.values()) and not all(given.values()):
            missing = ", ".join(name for name, present in given.items() if not present)
            raise ValueError(f"lat, lon and radius_m go together: {missing} missing")
        if self.rerank_top is not None and "rerank" in self.model_fields_set and not self.rerank:
            raise ValueError("rerank_top is given but rerank is false")
        return self

    @property
    def rerank_candidates(self) -> int | None:
        """How many candidates are re-ranked; None without re-ranking."""
        if not self.rerank and self.rerank_top is None:
            return None
        return self.rerank_top or DEFAULT_TOP

    def geo_filter(self) -> GeoFilter | None:
        if self.lat is None or self.lon is None or self.radius_m is None:
            return None
        return GeoFilter(lat=self.lat, lon=self.lon, radius_m=self.radius_m)


class JsonQuery(SearchParameters):
    """A query by indexed image (`image_id`) or by embedding (`vector`): exactly one."""

    model_config = ConfigDict(json_schema_extra=_one_query_form)

    image_id: str | None = Field(
        None, min_length=1, description="An indexed image; never returned as its own neighbour."
    )
    vector: list[FiniteFloat] | None = Field(None, min_length=1)  # its limit: request_models

    @field_validator("vector", mode="before")
    @classmethod
    def _only_the_first_bad_value(cls, value: Any) -> Any:
        """Cut the vector after its first value that is not a finite number: the answer names
        that one, and a long bad vector costs one error, not one per value."""
        if isinstance(value, list):
            for position, item in enumerate(value):
                if not _finite_number(item):
                    return value[: position + 1]
        return value

    @model_validator(mode="after")
    def _one_query_form(self) -> JsonQuery:
        if (self.image_id is None) == (self.vector is None):
            raise ValueError("give exactly one of image_id and vector")
        if self.exclude_same_building and self.image_id is None:
            raise ValueError(
                "exclude_same_building needs an image_id query (a vector has no building)"
            )
        if self.rerank_candidates is not None and self.image_id is None:
            raise ValueError(
                "rerank needs a photo: upload an image or give an image_id (a vector has none)"
            )
        return self


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


class UploadParameters(SearchParameters):
    """The form fields sent beside an uploaded image."""

    @model_validator(mode="after")
    def _no_building_exclusion(self) -> UploadParameters:
        if self.exclude_same_building:
            raise ValueError(
                "exclude_same_building needs an image_id query (an uploaded image has no "
                "known building)"
            )
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queries: list[JsonQuery] = Field(min_length=1)


@dataclass(frozen=True)
class RequestModels:
    query: type[JsonQuery]
    batch: type[BatchRequest]
    upload: type[UploadParameters]


def request_models(limits: QueryLimits) -> RequestModels:
    """The request classes of an app with these limits (they appear in its OpenAPI schema)."""
    k = (
        int | None,
        Field(
            None,
            ge=1,
            le=limits.max_k,
            description=f"Number of neighbours, 1 to {limits.max_k} (default {limits.default_k}).",
        ),
    )
    radius_m = (
        float | None,
        Field(
            None,
            gt=0,
            le=limits.max_radius_m,
            allow_inf_nan=False,
            description=f"Filter radius in great-circle metres, at most {limits.max_radius_m:g}.",
        ),
    )
    vector = (
        list[FiniteFloat] | None,
        Field(
            None,
            min_length=1,
            max_length=limits.max_vector_length,
            description="An embedding in the head's space (embedding_dim values); normalised "
            "to unit length before search, so scores are cosine similarities.",
        ),
    )
    query = create_model("SimilarQuery", __base__=JsonQuery, k=k, radius_m=radius_m, vector=vector)
    batch = create_model(
        "SimilarBatch",
        __base__=BatchRequest,
        queries=(list[query], Field(min_length=1, max_length=limits.max_batch)),  # type: ignore[valid-type]
    )
    upload = create_model("SimilarUpload", __base__=UploadParameters, k=k, radius_m=radius_m)
    return RequestModels(query=query, batch=batch, upload=upload)


def describe_errors(errors: list[ErrorDetails] | list[dict[str, Any]]) -> str:
    """Pydantic errors as one line: 'queries.0.k: Input should be less than or equal to 100'.

    At most MAX_DESCRIBED_ERRORS are described, each location cut to MAX_LOCATION_CHARS
    (keys come from the request), so a large bad body cannot make a large answer."""
    parts = []
    for error in errors[:MAX_DESCRIBED_ERRORS]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        if len(location) > MAX_LOCATION_CHARS:
            location = location[:MAX_LOCATION_CHARS] + "..."
        message = str(error.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    if len(errors) > MAX_DESCRIBED_ERRORS:
        parts.append(f"and {len(errors) - MAX_DESCRIBED_ERRORS} more errors")
    return "; ".join(parts) or "invalid request"


class NeighbourOut(BaseModel):
    image_id: str
    dataset_id: int
    target_id: int
    lat: float
    lon: float
    score: float = Field(description="Cosine similarity to the query, higher is closer.")
    inliers: int | None = Field(
        None,
        description="With rerank: matches with the query photo that agree with one "
        "homography (null for candidates beyond rerank_top, and without rerank).",
    )
    rerank_score: float | None = Field(
        None,
        description="With rerank: score + 0.5 * min(inliers, 50) / 50, the order of the "
        "re-ranked candidates.",
    )


class SimilarResponse(BaseModel):
    bundle_version: str
    neighbours: list[NeighbourOut]


class QueryResult(BaseModel):
    neighbours: list[NeighbourOut]


class BatchSimilarResponse(BaseModel):
    bundle_version: str
    results: list[QueryResult] = Field(description="One result per query, in request order.")


class LocationOut(BaseModel):
    """Where the photo was taken, estimated from its hits (null fields when there are none)."""

    lat: float | None = Field(description="Estimated latitude, degrees.")
    lon: float | None = Field(description="Estimated longitude, degrees.")
    uncertainty_m: float | None = Field(
        description="Radius in metres around the estimate: twice the weighted RMS distance "
        "of the supporting hits, at least 25 m."
    )
    confidence: float | None = Field(
        description="In [0, 1]: the share of held-out queries with this raw confidence whose "
        "true position lay within uncertainty_m (calibrated on the bundle's val split), or "
        "the raw confidence when calibrated is false."
    )
    calibrated: bool = Field(description="Whether confidence is calibrated.")
    support: list[NeighbourOut] = Field(
        description="The hits of the densest cluster, on which the estimate rests."
    )


class LocateResponse(LocationOut):
    bundle_version: str


class BatchLocateResponse(BaseModel):
    bundle_version: str
    results: list[LocationOut] = Field(description="One estimate per query, in request order.")


class ImageOut(BaseModel):
    bundle_version: str
    image_id: str
    dataset_id: int
    target_id: int
    patch_id: int
    lat: float
    lon: float
    split: str


class LoadFailureOut(BaseModel):
    bundle: str
    error: str
    at: float = Field(description="Unix time of the failure.")


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"
    bundle_version: str
    count: int
    embedding_dim: int
    index_type: str
    loaded_at: float = Field(description="Unix time the bundle was loaded.")
    last_load_error: LoadFailureOut | None = Field(
        None, description="A newer bundle that failed to load; this one keeps serving."
    )
    pointer_problem: str | None = Field(
        None,
        description="What is wrong with `current` now (missing, unreadable, not a bundle "
        "name); the bundle loaded last keeps serving.",
    )


class NotReadyResponse(BaseModel):
    detail: str
    last_load_error: LoadFailureOut | None = None
    pointer_problem: str | None = None


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ErrorResponse(BaseModel):
    detail: str
