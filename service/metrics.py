"""Prometheus metrics of one app: per-stage and per-request latency, requests, the bundle."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geotriplet_assets.bundle.load import LoadedBundle

STAGES = ("decode", "embed", "search")
# 0.25 ms to 10 s: a vector search is sub-millisecond, a large upload's decode ~1 s.
LATENCY_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
CONTENT_TYPE = CONTENT_TYPE_LATEST
# nginx's status for a request whose client closed the connection before the answer.
CLIENT_CLOSED_REQUEST = 499


class ServiceMetrics:
    """Each app has its own registry, so several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.stage_seconds = Histogram(
            "geotriplet_stage_seconds",
            "Time spent in one stage of a /similar request (decode, embed, search).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "geotriplet_request_seconds",
            "Whole-request latency by endpoint (route template).",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "geotriplet_requests",
            "HTTP requests by endpoint (route template; 'unmatched' for no route and for "
            "bodies refused by Content-Length before routing) and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.bundle_info = Gauge(
            "geotriplet_bundle_info",
            "The bundle serving now (value 1), labelled with its version and image count.",
            ["version", "count", "index_type"],
            registry=self.registry,
        )
        self.bundle_vectors = Gauge(
            "geotriplet_bundle_vectors",
            "Number of images indexed by the bundle serving now.",
            registry=self.registry,
        )
        self.bundle_load_failures = Counter(
            "geotriplet_bundle_load_failures",
            "Bundles that failed to load (the previous one kept serving).",
            registry=self.registry,
        )
        for stage in STAGES:
            self.stage_seconds.labels(stage)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(name).observe(time.perf_counter() - started)

    def bundle_loaded(self, bundle: LoadedBundle) -> None:
        self.bundle_info.clear()
        self.bundle_info.labels(bundle.version, str(bundle.count), bundle.index_type).set(1)
        self.bundle_vectors.set(bundle.count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by route template (not raw path) and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except ClientDisconnect:
            # The client went away mid-request: nobody to answer and nothing went wrong here.
            status = CLIENT_CLOSED_REQUEST
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.request_seconds.labels(endpoint).observe(time.perf_counter() - started)
