"""The HTTP endpoints. Those doing CPU work are plain `def`: FastAPI runs them in its
threadpool, where ONNX Runtime and FAISS release the GIL and the event loop stays free."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from geotriplet_assets.bundle.errors import UnknownImageError
from geotriplet_assets.bundle.load import LoadedBundle
from service.bundle_watcher import BundleWatcher, LoadFailure
from service.locate import answer_locate
from service.metrics import CONTENT_TYPE
from service.schemas import (
    BatchLocateResponse,
    BatchSimilarResponse,
    ErrorResponse,
    HealthResponse,
    ImageOut,
    LoadFailureOut,
    LocateResponse,
    NotReadyResponse,
    ReadyResponse,
    SimilarResponse,
)
from service.similar import SearchContext, answer_similar
from service.similar_request import SimilarRequest, read_similar_request
from service.thumbnails import DEFAULT_SIZE, MAX_SIZE, MIN_SIZE, ThumbnailUnavailable

router = APIRouter()
STATIC_DIR = Path(__file__).parent / "static"

_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "No bundle is loaded yet."}
}
SIMILAR_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed multipart body."},
    404: {"model": ErrorResponse, "description": "Unknown image_id."},
    413: {"model": ErrorResponse, "description": "Body or image too large."},
    415: {"model": ErrorResponse, "description": "Not JSON or multipart; not a JPEG/PNG/WebP."},
    422: {"model": ErrorResponse, "description": "Invalid parameters, vector or image."},
    **_NOT_READY,
}


async def serving_bundle(request: Request) -> LoadedBundle:
    """The bundle this request uses from start to end (a swap does not affect it)."""
    watcher: BundleWatcher = request.app.state.watcher
    bundle = watcher.current
    if bundle is None:
        raise HTTPException(503, watcher.not_ready_reason())
    return bundle


def search_context(request: Request) -> SearchContext:
    state = request.app.state
    return SearchContext(
        metrics=state.metrics,
        reranker=state.reranker,
        max_rerank_candidates=state.settings.max_rerank_candidates,
    )


ServingBundle = Annotated[LoadedBundle, Depends(serving_bundle)]
ParsedSimilarRequest = Annotated[SimilarRequest, Depends(read_similar_request)]


@router.post(
    "/similar",
    response_model=SimilarResponse | BatchSimilarResponse,
    responses=SIMILAR_ERRORS,
    summary="Images most similar to an uploaded image, an indexed image or a vector",
)
def similar(
    request: Request,
    query: ParsedSimilarRequest,
    bundle: ServingBundle,
) -> SimilarResponse | BatchSimilarResponse:
    """One query answers `{"bundle_version", "neighbours"}`; JSON `{"queries": [...]}`
    answers `{"bundle_version", "results": [{"neighbours"}, ...]}` in request order."""
    state = request.app.state
    return answer_similar(query, bundle, search_context(request), state.settings.default_k)


@router.post(
    "/locate",
    response_model=LocateResponse | BatchLocateResponse,
    responses=SIMILAR_ERRORS,
    summary="Where a photo was taken: an estimated position with uncertainty and confidence",
)
def locate(
    request: Request,
    query: ParsedSimilarRequest,
    bundle: ServingBundle,
) -> LocateResponse | BatchLocateResponse:
    """The same query forms, parameters and limits as `POST /similar` (k defaults to the
    bundle's, 20). The estimate is the score-weighted centre of the densest cluster of hits
    (within 100 m of each other), not the top hit's position; `support` lists that cluster.
    `exclude_same_building` lets an indexed image be located without its own building."""
    return answer_locate(query, bundle, search_context(request))


@router.get(
    "/images/{image_id:path}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The thumbnail."},
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        404: {"model": ErrorResponse, "description": "Unknown image_id, or no original."},
        **_NOT_READY,
    },
    summary="A JPEG thumbnail of an indexed image, made from its original photo",
)
def thumbnail(
    request: Request,
    image_id: str,
    bundle: ServingBundle,
    size: Annotated[int, Query(ge=MIN_SIZE, le=MAX_SIZE)] = DEFAULT_SIZE,
) -> Response:
    """The longer side is SIZE pixels (64 to 512, default 256). ETag and Cache-Control are
    set; a matching If-None-Match is answered 304."""
    try:
        row = bundle.row_of(image_id)
    except UnknownImageError as error:
        raise HTTPException(404, str(error)) from error
    try:
        made = request.app.state.thumbnails.get(bundle, row, size)
    except ThumbnailUnavailable as error:
        raise HTTPException(404, str(error)) from error
    headers = {"ETag": made.etag, "Cache-Control": "public, max-age=3600"}
    if request.headers.get("if-none-match") == made.etag:
        return Response(status_code=304, headers=headers)
    return Response(made.jpeg, media_type="image/jpeg", headers=headers)


@router.get(
    "/images/{image_id:path}",
    response_model=ImageOut,
    responses={404: {"model": ErrorResponse, "description": "Unknown image_id."}, **_NOT_READY},
    summary="Metadata of an indexed image (image ids may contain '/')",
)
def image(image_id: str, bundle: ServingBundle) -> ImageOut:
    try:
        row = bundle.row_of(image_id)
    except UnknownImageError as error:
        raise HTTPException(404, str(error)) from error
    return ImageOut(bundle_version=bundle.version, **bundle.image_record(row))


@router.get("/", include_in_schema=False)
async def search_page() -> FileResponse:
    """The search page (static/index.html): all it loads is served by this app."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get(
    "/random",
    response_model=ImageOut,
    responses=_NOT_READY,
    summary="A random indexed image (the search page's starting point)",
)
def random_image(bundle: ServingBundle) -> ImageOut:
    row = secrets.randbelow(bundle.count)
    return ImageOut(bundle_version=bundle.version, **bundle.image_record(row))


@router.get("/health", response_model=HealthResponse, summary="The process is alive")
async def health() -> HealthResponse:
    return HealthResponse()


@router.get(
    "/ready",
    response_model=ReadyResponse,
    responses={503: {"model": NotReadyResponse, "description": "No bundle is loaded yet."}},
    summary="A bundle is loaded and serving",
)
async def ready(request: Request) -> ReadyResponse | JSONResponse:
    watcher: BundleWatcher = request.app.state.watcher
    bundle = watcher.current
    failure = _failure_out(watcher.last_failure)
    if bundle is None:
        body = NotReadyResponse(
            detail=watcher.not_ready_reason(),
            last_load_error=failure,
            pointer_problem=watcher.pointer_problem,
        )
        return JSONResponse(body.model_dump(), status_code=503)
    return ReadyResponse(
        bundle_version=bundle.version,
        count=bundle.count,
        embedding_dim=bundle.dim,
        index_type=bundle.index_type,
        loaded_at=bundle.loaded_at,
        last_load_error=failure,
        pointer_problem=watcher.pointer_problem,
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)


def _failure_out(failure: LoadFailure | None) -> LoadFailureOut | None:
    if failure is None:
        return None
    return LoadFailureOut(bundle=failure.bundle, error=failure.error, at=failure.at)
