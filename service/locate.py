"""Answer a validated `POST /locate` request: the queries' hits, exactly as `POST /similar`
finds them, turned into estimated positions (`geotriplet_assets.bundle.locate`)."""

from __future__ import annotations

from geotriplet_assets.bundle.load import LoadedBundle
from geotriplet_assets.bundle.search import Neighbour
from service.schemas import BatchLocateResponse, LocateResponse, LocationOut
from service.similar import SearchContext, neighbour_out, search
from service.similar_request import SimilarRequest


def answer_locate(
    request: SimilarRequest, bundle: LoadedBundle, context: SearchContext
) -> LocateResponse | BatchLocateResponse:
    """K defaults to the bundle's own (the k its confidence was calibrated with). With
    rerank, the estimate rests on the re-ranked order."""
    results = search(request, bundle, context, bundle.manifest.locate.k)
    locations = [_location(bundle, [item.neighbour for item in hits]) for hits in results]
    if request.batch:
        return BatchLocateResponse(bundle_version=bundle.version, results=locations)
    return LocateResponse(bundle_version=bundle.version, **locations[0].model_dump())


def _location(bundle: LoadedBundle, hits: list[Neighbour]) -> LocationOut:
    place = bundle.locate(hits)
    if place is None:
        return LocationOut(
            lat=None, lon=None, uncertainty_m=None, confidence=None, calibrated=False, support=[]
        )
    return LocationOut(
        lat=place.lat,
        lon=place.lon,
        uncertainty_m=place.uncertainty_m,
        confidence=place.confidence,
        calibrated=place.calibrated,
        support=[neighbour_out(hit) for hit in place.support],
    )
