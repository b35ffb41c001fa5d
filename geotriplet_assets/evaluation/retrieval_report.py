"""Retrieval quality of a published bundle, measured through the service's own search code.

Every test-split image (or a seeded sample of at most `max_queries` of them, with 95 %
confidence intervals) queries the whole index as an `image_id` query of `POST /similar`
does (its own row excluded); a sample also goes through the uploaded-image path
(decode + the bundle's ONNX model) to show that path agrees with the indexed vectors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.bundle.search import SearchQuery
from geotriplet_assets.evaluation.localisation import Localisation, eligible_rows, localise
from geotriplet_assets.evaluation.location_errors import ErrorSummary
from geotriplet_assets.evaluation.query_sample import (
    mean_interval,
    sample_queries,
    wilson_interval,
)
from geotriplet_assets.evaluation.retrieval_metrics import average_precision_at_r
from geotriplet_assets.geodesy import great_circle_m

DEFAULT_KS = (1, 5, 10)
QUERY_CHUNK = 256


class ReportError(ValueError):
    """The bundle cannot be evaluated (no bundle, no test images)."""


def _nan_as_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_as_none(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass(frozen=True)
class RetrievalReport:
    bundle_version: str
    index_type: str
    queries: int
    eligible_queries: int
    """Test images whose building has another view; `queries` of them queried."""
    skipped_single_image_buildings: int
    recall_at: dict[int, float]
    recall_at_radius: dict[int, float]
    """recall@k of the place-recognition protocol: a hit within `recall_radius_m`."""
    recall_radius_m: float
    map_at_r: float
    median_error_m: float
    p90_error_m: float
    mean_error_m: float
    upload_queries: int
    upload_min_cosine: float | None
    upload_top1_agreement: float | None
    locate: dict[str, float]
    """POST /locate's estimate: median and p90 error, shares within 25 m, 100 m and 1 km,
    the share within its own uncertainty and the mean confidence it claimed."""
    top1_location: dict[str, float]
    """The same error figures for the top hit's position, the estimate's baseline."""
    intervals: dict[str, tuple[float, float]]
    """95 % confidence intervals over the queries: "recall@k" (Wilson) and "map@r"."""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON: metrics that could not be measured (no query) are null."""
        values = asdict(self)
        values["recall_at"] = {str(k): v for k, v in self.recall_at.items()}
        values["recall_at_radius"] = {str(k): v for k, v in self.recall_at_radius.items()}
        values["intervals"] = {name: list(bounds) for name, bounds in self.intervals.items()}
        return _nan_as_none(values)

    def summary_row(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle_version,
            "queries": self.queries,
            **{f"recall@{k}": round(v, 4) for k, v in self.recall_at.items()},
            f"recall@1 {self.recall_radius_m:g} m": round(
                self.recall_at_radius.get(1, math.nan), 4
            ),
            "mAP@R": round(self.map_at_r, 4),
            "median_error_m": round(self.median_error_m, 1),
        }


def build_retrieval_report(
    bundles_dir: Path,
    *,
    image_paths: Mapping[str, Path],
    upload_queries: int,
    ks: Sequence[int] = DEFAULT_KS,
    max_queries: int | None = None,
    seed: int = 0,
    recall_radius_m: float = 25.0,
) -> RetrievalReport:
    """Evaluate the current bundle in BUNDLES_DIR on its test split (at most MAX_QUERIES of
    its images, drawn with SEED)."""
    version = fmt.read_current_version(bundles_dir)
    if version is None:
        raise ReportError(f"no bundle has been published in {bundles_dir}")
    bundle = load_bundle(bundles_dir / version, verify_hashes=False)
    images = bundle.images
    building = images.building_code
    relevant_count = np.bincount(building)[building] - 1
    test_rows = np.flatnonzero(images.splits.to_numpy(zero_copy_only=False) == "test")
    eligible = eligible_rows(bundle, "test")
    query_rows = sample_queries(eligible, max_queries, seed)
    if len(query_rows) == 0:
        return _without_queries(version, bundle.index_type, ks, len(test_rows), recall_radius_m)
    depth = int(min(max(max(ks), relevant_count[query_rows].max()), bundle.count - 1))
    found = _search_rows(bundle, query_rows, depth)
    relevant = building[found] == building[query_rows][:, None]
    hits_at = {k: int(relevant[:, :k].any(axis=1).sum()) for k in ks}
    recall_at = {k: hits / len(query_rows) for k, hits in hits_at.items()}
    precision = average_precision_at_r(relevant, relevant_count[query_rows])
    intervals = {
        f"recall@{k}": wilson_interval(hits, len(query_rows)) for k, hits in hits_at.items()
    }
    intervals["map@r"] = mean_interval(precision)
    lat, lon = images.lat, images.lon
    top = found[:, : max(ks)]
    near = great_circle_m(lat[query_rows, None], lon[query_rows, None], lat[top], lon[top])
    near = near <= recall_radius_m
    recall_at_radius = {k: float(near[:, :k].any(axis=1).mean()) for k in ks}
    errors = great_circle_m(lat[query_rows], lon[query_rows], lat[found[:, 0]], lon[found[:, 0]])
    upload = _upload_agreement(bundle, image_paths, upload_queries, found, query_rows)
    located = localise(bundle, query_rows)
    return RetrievalReport(
        bundle_version=version,
        index_type=bundle.index_type,
        queries=len(query_rows),
        eligible_queries=len(eligible),
        skipped_single_image_buildings=len(test_rows) - len(eligible),
        recall_at=recall_at,
        recall_at_radius=recall_at_radius,
        recall_radius_m=recall_radius_m,
        map_at_r=float(precision.mean()),
        median_error_m=float(np.median(errors)),
        p90_error_m=float(np.percentile(errors, 90)),
        mean_error_m=float(errors.mean()),
        **upload,
        locate=_locate_figures(bundle, located),
        top1_location=ErrorSummary.of(located.top1_errors_m).as_dict(),
        intervals=intervals,
    )


def _locate_figures(bundle: LoadedBundle, located: Localisation) -> dict[str, float]:
    figures = ErrorSummary.of(located.locate_errors_m).as_dict()
    calibration = bundle.manifest.locate.calibration
    claimed = located.raw_confidence
    if calibration is not None:
        claimed = np.array([calibration(float(raw)) for raw in located.raw_confidence])
    figures["within_uncertainty"] = float(located.within_uncertainty().mean())
    figures["mean_confidence"] = float(claimed.mean())
    return figures


def _without_queries(
    version: str, index_type: str, ks: Sequence[int], test_images: int, recall_radius_m: float
) -> RetrievalReport:
    """The report of a bundle whose test split has no building with two views (a tiny or
    heavily buffered data set): nothing can be measured, which the report says."""
    nan = float("nan")
    return RetrievalReport(
        bundle_version=version,
        index_type=index_type,
        queries=0,
        eligible_queries=0,
        skipped_single_image_buildings=test_images,
        recall_at=dict.fromkeys(ks, nan),
        recall_at_radius=dict.fromkeys(ks, nan),
        recall_radius_m=recall_radius_m,
        map_at_r=nan,
        median_error_m=nan,
        p90_error_m=nan,
        mean_error_m=nan,
        upload_queries=0,
        upload_min_cosine=None,
        upload_top1_agreement=None,
        locate=ErrorSummary.of(np.zeros(0)).as_dict(),
        top1_location=ErrorSummary.of(np.zeros(0)).as_dict(),
        intervals={},
    )


def _search_rows(bundle: LoadedBundle, rows: np.ndarray, depth: int) -> np.ndarray:
    """(len(ROWS), DEPTH) rows found for each row's own vector, the row itself excluded."""
    found = np.empty((len(rows), depth), dtype=np.int64)
    for start in range(0, len(rows), QUERY_CHUNK):
        chunk = rows[start : start + QUERY_CHUNK]
        queries = [
            SearchQuery(
                vector=bundle.vector(int(row)), k=depth, exclude_rows=frozenset({int(row)})
            )
            for row in chunk
        ]
        for offset, hits in enumerate(bundle.search(queries)):
            found[start + offset] = [hit.row for hit in hits]
    return found


def _upload_agreement(
    bundle: LoadedBundle,
    image_paths: Mapping[str, Path],
    count: int,
    found: np.ndarray,
    query_rows: np.ndarray,
) -> dict[str, Any]:
    """Query a sample of test images by their file bytes; compare with the indexed vectors.
    Images without a file in IMAGE_PATHS (a dataset.h5 without its photos) are skipped."""
    sample: list[tuple[int, Path]] = []
    for position, row in enumerate(query_rows):
        if len(sample) == count:
            break
        path = image_paths.get(bundle.images.image_id(int(row)))
        if path is not None:
            sample.append((position, path))
    if not sample:
        return {"upload_queries": 0, "upload_min_cosine": None, "upload_top1_agreement": None}
    cosines, same_top1 = [], []
    for position, path in sample:
        row = query_rows[position]
        vector = bundle.embed(bundle.decode(path.read_bytes())[None])[0]
        cosines.append(float(vector @ bundle.vector(int(row))))
        (hits,) = bundle.search(
            [SearchQuery(vector=vector, k=1, exclude_rows=frozenset({int(row)}))]
        )
        same_top1.append(bool(hits) and hits[0].row == found[position, 0])
    return {
        "upload_queries": len(sample),
        "upload_min_cosine": min(cosines),
        "upload_top1_agreement": float(np.mean(same_top1)),
    }
