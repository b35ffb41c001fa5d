"""Where was this photo taken: a position estimated from a query's hits, with its uncertainty
and a calibrated confidence.

The estimate is not the top hit's position. Hits are weighted by their score relative to the
best (SCORE_TEMPERATURE). Every hit proposes the cluster of hits within `cluster_radius_m` of
it; the cluster of the largest summed weight wins (ties: the better hit's). Its members'
positions, weighted, give the estimate (a mean of unit vectors,
so it is right across the antimeridian); `uncertainty_m` is twice their weighted RMS distance
from it, never under MIN_UNCERTAINTY_M. The raw confidence is the winning cluster's share of
the summed score of all hits. A bundle may carry a calibration (measured on held-out
queries when it was published): raw confidence bins mapped to the share of those queries whose
true position lay within `uncertainty_m`, made non-decreasing. With it, `confidence` is that
share; without one it is the raw value, and `calibrated` says which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geotriplet_assets.bundle.search import Neighbour
from geotriplet_assets.geodesy import great_circle_m, latlon_from_unit_vectors, unit_vectors

DEFAULT_CLUSTER_RADIUS_M = 100.0
DEFAULT_LOCATE_K = 20
# A hit's weight is exp((score - best score) / SCORE_TEMPERATURE): a hit 0.02 below the best
# in cosine weighs e^-2 of it, so a crowd of mediocre hits elsewhere cannot outvote a few
# close ones. Chosen on the demo city's val split (0.01 to 0.2 tried; 0.01 located most
# queries within 25 m, and anything above 0.05 fewer than the top hit alone).
SCORE_TEMPERATURE = 0.01
MIN_UNCERTAINTY_M = 25.0
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class Location:
    lat: float
    lon: float
    uncertainty_m: float
    confidence: float
    raw_confidence: float
    calibrated: bool
    support: list[Neighbour]


@dataclass(frozen=True)
class Calibration:
    """Share of held-out queries located within their uncertainty, per raw-confidence bin."""

    edges: tuple[float, ...]  # CALIBRATION_BINS + 1 increasing values from 0 to 1
    hit_rate: tuple[float, ...]  # non-decreasing, one per bin
    queries: int

    def __call__(self, raw: float) -> float:
        position = int(np.searchsorted(self.edges, raw, side="right")) - 1
        return self.hit_rate[min(max(position, 0), len(self.hit_rate) - 1)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "hit_rate": list(self.hit_rate),
            "queries": self.queries,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Calibration:
        edges = tuple(float(v) for v in values["edges"])
        hit_rate = tuple(float(v) for v in values["hit_rate"])
        if len(edges) != len(hit_rate) + 1 or list(edges) != sorted(edges):
            raise ValueError("calibration edges must be increasing, one more than hit_rate")
        if not all(0.0 <= rate <= 1.0 for rate in hit_rate):
            raise ValueError("calibration hit rates must lie in [0, 1]")
        return cls(edges, hit_rate, int(values["queries"]))

    @classmethod
    def fit(cls, raw: Sequence[float], within: Sequence[bool]) -> Calibration:
        """Equal-width bins of RAW confidence; each bin's share of WITHIN, pooled with its
        neighbours where needed to be non-decreasing (pool adjacent violators), and the
        overall share where a bin is empty."""
        raw_values = np.clip(np.asarray(raw, dtype=np.float64), 0.0, 1.0)
        hits = np.asarray(within, dtype=np.float64)
        edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
        bins = np.minimum(
            np.searchsorted(edges, raw_values, side="right") - 1, CALIBRATION_BINS - 1
        )
        counts = np.bincount(bins, minlength=CALIBRATION_BINS).astype(np.float64)
        sums = np.bincount(bins, weights=hits, minlength=CALIBRATION_BINS)
        overall = float(hits.mean()) if len(hits) else 0.0
        rates = _non_decreasing(sums, counts, overall)
        return cls(tuple(edges.tolist()), tuple(rates), len(hits))


def _non_decreasing(sums: np.ndarray, counts: np.ndarray, empty: float) -> list[float]:
    """Pool adjacent violators over the bins' hit rates, weighted by their counts."""
    blocks: list[list[float]] = []  # [sum, count, number of bins]
    for total, count in zip(sums, counts, strict=True):
        blocks.append([float(total), float(count), 1.0])
        while len(blocks) > 1 and _rate(blocks[-2], empty) > _rate(blocks[-1], empty):
            last = blocks.pop()
            blocks[-1] = [
                blocks[-1][0] + last[0],
                blocks[-1][1] + last[1],
                blocks[-1][2] + last[2],
            ]
    return [_rate(block, empty) for block in blocks for _ in range(int(block[2]))]


def _rate(block: list[float], empty: float) -> float:
    return block[0] / block[1] if block[1] else empty


@dataclass(frozen=True)
class Estimates:
    """Per query of a batch: the estimate, its uncertainty and raw confidence, and which of
    the query's hits form the winning cluster."""

    lat: np.ndarray  # (Q,) degrees
    lon: np.ndarray
    uncertainty_m: np.ndarray
    raw_confidence: np.ndarray
    members: np.ndarray  # (Q, K) bool


def estimate_positions(
    lat: np.ndarray,
    lon: np.ndarray,
    scores: np.ndarray,
    *,
    cluster_radius_m: float = DEFAULT_CLUSTER_RADIUS_M,
    score_temperature: float = SCORE_TEMPERATURE,
) -> Estimates:
    """The estimates of Q queries from their K hits each: (Q, K) positions and finite scores,
    best hit first. Memory is O(Q K^2)."""
    lat, lon, scores = (np.asarray(a, dtype=np.float64) for a in (lat, lon, scores))
    if lat.ndim != 2 or lat.shape[1] == 0 or not lat.shape == lon.shape == scores.shape:
        raise ValueError(
            f"lat, lon and scores must share a (Q, K >= 1) shape, got "
            f"{lat.shape}, {lon.shape}, {scores.shape}"
        )
    queries, k = lat.shape
    weights = np.exp((scores - scores.max(axis=1, keepdims=True)) / score_temperature)
    distances = great_circle_m(lat[:, :, None], lon[:, :, None], lat[:, None, :], lon[:, None, :])
    within = distances <= cluster_radius_m
    cluster_weight = np.einsum("qij,qj->qi", within, weights)
    # argmax takes the first of equal clusters: the one around the better-ranked hit
    members = within[np.arange(queries), np.argmax(cluster_weight, axis=1)]
    member_weights = np.where(members, weights, 0.0)
    vectors = unit_vectors(lat, lon).reshape(queries, k, 3)
    centre = np.einsum("qk,qkd->qd", member_weights, vectors)
    # members on opposite sides of the globe (a radius of thousands of km): the first one
    degenerate = np.linalg.norm(centre, axis=1) < 1e-12
    if degenerate.any():
        first = np.argmax(members[degenerate], axis=1)
        centre[degenerate] = vectors[degenerate][np.arange(len(first)), first]
    estimate_lat, estimate_lon = latlon_from_unit_vectors(centre)
    spread = great_circle_m(lat, lon, estimate_lat[:, None], estimate_lon[:, None])
    total = member_weights.sum(axis=1)
    rms = np.sqrt((member_weights * spread**2).sum(axis=1) / total)
    return Estimates(
        lat=estimate_lat,
        lon=estimate_lon,
        uncertainty_m=np.maximum(2.0 * rms, MIN_UNCERTAINTY_M),
        raw_confidence=total / weights.sum(axis=1),
        members=members,
    )


def locate(
    hits: Sequence[Neighbour],
    *,
    cluster_radius_m: float = DEFAULT_CLUSTER_RADIUS_M,
    calibration: Calibration | None = None,
    score_temperature: float = SCORE_TEMPERATURE,
) -> Location | None:
    """The estimated position of the photo whose best hits are HITS (best first); None
    without hits."""
    if not hits:
        return None
    estimate = estimate_positions(
        np.array([[hit.lat for hit in hits]]),
        np.array([[hit.lon for hit in hits]]),
        np.array([[hit.score for hit in hits]]),
        cluster_radius_m=cluster_radius_m,
        score_temperature=score_temperature,
    )
    raw = float(estimate.raw_confidence[0])
    return Location(
        lat=float(estimate.lat[0]),
        lon=float(estimate.lon[0]),
        uncertainty_m=float(estimate.uncertainty_m[0]),
        confidence=calibration(raw) if calibration is not None else raw,
        raw_confidence=raw,
        calibrated=calibration is not None,
        support=[hits[int(i)] for i in np.flatnonzero(estimate.members[0])],
    )
