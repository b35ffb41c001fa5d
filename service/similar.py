"""Answer a validated `POST /similar` request on one bundle (runs in the threadpool); the
searches it makes are also those of `POST /locate`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException

from geotriplet_assets.bundle.errors import OriginalUnavailable, UnknownImageError
from geotriplet_assets.bundle.image_decode import (
    NOT_AN_IMAGE,
    TOO_LARGE,
    ImageRejected,
)
from geotriplet_assets.bundle.load import LoadedBundle
from geotriplet_assets.bundle.rerank import Reranker, Verified, upload_features
from geotriplet_assets.bundle.search import Neighbour, SearchQuery
from service.metrics import ServiceMetrics
from service.schemas import (
    BatchSimilarResponse,
    JsonQuery,
    NeighbourOut,
    QueryResult,
    SearchParameters,
    SimilarResponse,
)
from service.similar_request import SimilarRequest

# ImageRejected reasons that are not "unprocessable" (422).
_REJECTION_STATUS = {NOT_AN_IMAGE: 415, TOO_LARGE: 413}


def answer_similar(
    request: SimilarRequest, bundle: LoadedBundle, context: SearchContext, default_k: int
) -> SimilarResponse | BatchSimilarResponse:
    """Check the queries against the bundle, embed an upload, search, shape the answer."""
    results = search(request, bundle, context, default_k)
    if request.batch:
        return BatchSimilarResponse(
            bundle_version=bundle.version,
            results=[QueryResult(neighbours=neighbours_out(hits)) for hits in results],
        )
    return SimilarResponse(bundle_version=bundle.version, neighbours=neighbours_out(results[0]))


@dataclass(frozen=True)
class SearchContext:
    """What a search needs of the app besides the bundle."""

    metrics: ServiceMetrics
    reranker: Reranker
    max_rerank_candidates: int


def search(
    request: SimilarRequest, bundle: LoadedBundle, context: SearchContext, default_k: int
) -> list[list[Verified]]:
    """The hits of each query of REQUEST, best first: vectors checked, an upload decoded and
    embedded, the best candidates re-ranked where a query asks for it."""
    metrics = context.metrics
    for position, parameters in enumerate(request.queries):
        if isinstance(parameters, JsonQuery) and parameters.vector is not None:
            _check_vector(parameters.vector, bundle.dim, _where(request, position))
    _check_rerank(request, bundle, context.max_rerank_candidates)
    if request.image is not None:
        vector = _embed_upload(request.image, bundle, metrics)
        queries = [_with_vector(request.queries[0], vector, default_k)]
    else:
        queries = [
            _search_query(parameters, bundle, default_k, _where(request, position))
            for position, parameters in enumerate(request.queries)
        ]
    with metrics.stage("search"):
        results = bundle.search(queries)
    answers = []
    for parameters, hits in zip(request.queries, results, strict=True):
        k = parameters.k or default_k
        top = parameters.rerank_candidates
        if top is None:
            answers.append([Verified(hit, None, None) for hit in hits[:k]])
            continue
        with metrics.stage("rerank"):
            verified = _rerank(request, parameters, bundle, context.reranker, hits, top)
        answers.append(verified[:k])
    return answers


def _check_rerank(request: SimilarRequest, bundle: LoadedBundle, max_candidates: int) -> None:
    wanted = [parameters.rerank_candidates or 0 for parameters in request.queries]
    if not any(wanted):
        return
    if not bundle.has_originals:
        raise HTTPException(
            422,
            f"rerank needs the original photos, and bundle {bundle.version} does not record "
            "where they are (no images_root or no path column)",
        )
    if sum(wanted) > max_candidates:
        raise HTTPException(
            422,
            f"rerank of {sum(wanted)} candidates in one request exceeds the limit of "
            f"{max_candidates}",
        )


def _rerank(
    request: SimilarRequest,
    parameters: SearchParameters,
    bundle: LoadedBundle,
    reranker: Reranker,
    hits: list[Neighbour],
    top: int,
) -> list[Verified]:
    try:
        if request.image is not None:
            try:
                features = upload_features(bundle, request.image)
            except ImageRejected as rejected:
                raise _rejection(rejected) from rejected
        else:
            assert isinstance(parameters, JsonQuery) and parameters.image_id is not None
            features = reranker.row_features(bundle, bundle.row_of(parameters.image_id))
        return reranker.rerank(bundle, features, hits, top)
    except OriginalUnavailable as error:
        raise HTTPException(422, f"rerank: {error}") from error


def _where(request: SimilarRequest, position: int) -> str:
    return f"queries.{position}." if request.batch else ""


def _check_vector(vector: list[float], dim: int, where: str) -> None:
    if len(vector) != dim:
        raise HTTPException(
            422, f"{where}vector has {len(vector)} values, the bundle's embeddings have {dim}"
        )
    if not np.any(np.asarray(vector, dtype=np.float64)):
        raise HTTPException(422, f"{where}vector is all zeros: it has no direction")


def _unit(vector: list[float]) -> np.ndarray:
    """VECTOR scaled to unit length (scaled by its largest value first: no overflow)."""
    values = np.asarray(vector, dtype=np.float64)
    values /= np.max(np.abs(values))
    return (values / np.linalg.norm(values)).astype(np.float32)


def _search_query(
    parameters: SearchParameters, bundle: LoadedBundle, default_k: int, where: str
) -> SearchQuery:
    assert isinstance(parameters, JsonQuery)
    k = parameters.k or default_k
    geo = parameters.geo_filter()
    if parameters.vector is not None:
        return SearchQuery(
            vector=_unit(parameters.vector),
            k=k,
            geo=geo,
            group_by_building=parameters.group_by_building,
        )
    assert parameters.image_id is not None
    try:
        row = bundle.row_of(parameters.image_id)
    except UnknownImageError as error:
        raise HTTPException(404, f"{where}image_id: {error}") from error
    return SearchQuery(
        vector=bundle.vector(row),
        k=max(k, parameters.rerank_candidates or 0),
        geo=geo,
        group_by_building=parameters.group_by_building,
        exclude_rows=frozenset({row}),
        exclude_building=bundle.building(row) if parameters.exclude_same_building else None,
    )


def _embed_upload(data: bytes, bundle: LoadedBundle, metrics: ServiceMetrics) -> np.ndarray:
    with metrics.stage("decode"):
        try:
            pixels = bundle.decode(data, name="image")
        except ImageRejected as rejected:
            raise _rejection(rejected) from rejected
    with metrics.stage("embed"):
        return bundle.embed(pixels[None])[0]


def _rejection(rejected: ImageRejected) -> HTTPException:
    status = _REJECTION_STATUS.get(rejected.reason, 422)
    return HTTPException(status, f"{rejected.reason}: {rejected.detail}")


def _with_vector(parameters: SearchParameters, vector: np.ndarray, default_k: int) -> SearchQuery:
    return SearchQuery(
        vector=np.ascontiguousarray(vector, dtype=np.float32),
        k=max(parameters.k or default_k, parameters.rerank_candidates or 0),
        geo=parameters.geo_filter(),
        group_by_building=parameters.group_by_building,
    )


def neighbours_out(hits: Sequence[Verified]) -> list[NeighbourOut]:
    return [
        neighbour_out(item.neighbour, inliers=item.inliers, rerank_score=item.rerank_score)
        for item in hits
    ]


def neighbour_out(
    hit: Neighbour, *, inliers: int | None = None, rerank_score: float | None = None
) -> NeighbourOut:
    return NeighbourOut(
        image_id=hit.image_id,
        dataset_id=hit.dataset_id,
        target_id=hit.target_id,
        lat=hit.lat,
        lon=hit.lon,
        score=hit.score,
        inliers=inliers,
        rerank_score=rerank_score,
    )
