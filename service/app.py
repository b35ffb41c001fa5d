"""The FastAPI application: `uvicorn --factory service.app:create_app`."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from geotriplet_assets.bundle.load import load_bundle
from geotriplet_assets.bundle.rerank import Reranker
from service.body_limit import BodySizeLimitMiddleware
from service.bundle_watcher import BundleWatcher
from service.metrics import RequestMetricsMiddleware, ServiceMetrics
from service.openapi import install_openapi
from service.routes import STATIC_DIR, router
from service.schemas import QueryLimits, describe_errors, request_models
from service.settings import ServiceSettings
from service.thumbnails import Thumbnails

DESCRIPTION = """\
Find the indexed building images most similar to a query: an uploaded photo
(multipart/form-data, file field `image`), an indexed image (`image_id`) or an embedding
(`vector`). Optional geographic filter (`lat`, `lon`, `radius_m`), one hit per building
(`group_by_building`), and `exclude_same_building` for image_id queries. Every error is a
4xx JSON `{"detail": "..."}` naming the problem; 503 until a bundle is loaded.
"""


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The service on SETTINGS (default: from the environment); its lifespan runs the watcher
    that loads `<bundles_dir>/current` and every bundle it names later."""
    settings = settings or ServiceSettings()
    metrics = ServiceMetrics()
    watcher = _bundle_watcher(settings, metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        watcher.start()
        try:
            yield
        finally:
            await run_in_threadpool(watcher.stop)

    # The docs page's Swagger UI is served by the app itself, not from a CDN (closed networks).
    app = FastAPIOffline(
        title="GeoTriplet retrieval service",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    models = request_models(
        QueryLimits(
            default_k=settings.default_k,
            max_k=settings.max_k,
            max_radius_m=settings.max_radius_m,
            max_batch=settings.max_batch,
            max_vector_length=settings.max_vector_length,
        )
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.watcher = watcher
    app.state.thumbnails = Thumbnails(settings.thumbnail_cache_bytes)
    app.state.reranker = Reranker(settings.rerank_cache_bytes)
    app.state.request_models = models
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(RequestValidationError, _validation_error)
    # The last middleware added is the outermost: metrics also see the 413s of the limit.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    install_openapi(app, models)
    return app


def _bundle_watcher(settings: ServiceSettings, metrics: ServiceMetrics) -> BundleWatcher:
    """The watcher that loads each bundle `current` names, as SETTINGS ask, into METRICS."""
    loader = functools.partial(
        load_bundle,
        verify_hashes=settings.verify_hashes,
        onnx_threads=settings.onnx_threads,
        max_pixels=settings.max_pixels,
        exact_filter_max_candidates=settings.exact_filter_max_candidates,
        search_threads=settings.search_threads,
    )
    return BundleWatcher(
        settings.bundles_dir,
        loader,
        poll_interval_s=settings.poll_interval_s,
        on_loaded=metrics.bundle_loaded,
        on_failed=lambda _failure: metrics.bundle_load_failures.inc(),
    )


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return JSONResponse({"detail": describe_errors(list(error.errors()))}, status_code=422)
