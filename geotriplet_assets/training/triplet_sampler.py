"""Vectorised triplet sampling with negatives drawn from geographic distance bands.

Anchor, positive and negative are image rows of the training split. The
positive is another image of the anchor's target (the anchor itself, flagged
`self_positive`, only when the target has a single image). The negative is an
image of another target whose distance from the anchor's target falls in the
requested band. Band b < num_bands holds the neighbours at distance
[edge_b, edge_b+1) (the last band includes its upper edge), the edges being
quantiles, in metres, of all neighbour distances; band num_bands ("far") holds
every target outside the anchor's k nearest, so easy negatives exist.

Targets and neighbours are local indices of one split. Whole batches are drawn
with array operations from one seeded PCG64 generator; the sampler is meant to
run in the training process, next to the bandit, not in DataLoader workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_FAR_REJECTION_ROUNDS = 4
"""Rounds of uniform rejection before far negatives are drawn by exact ranking."""


class TripletSamplingError(ValueError):
    """Invalid sampler input or a request the data cannot satisfy."""


@dataclass(frozen=True)
class TripletBatch:
    """Image rows of a batch of triplets and the band that produced each."""

    anchor: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    band: np.ndarray
    self_positive: np.ndarray

    def __len__(self) -> int:
        return len(self.anchor)


def _validate_graph(
    image_target: np.ndarray, neighbours: np.ndarray, distances_m: np.ndarray
) -> None:
    n_targets = len(neighbours)
    if n_targets >= 2**31:
        raise TripletSamplingError(f"at most 2**31 - 1 targets are supported, got {n_targets}")
    if image_target.ndim != 1 or image_target.size == 0:
        raise TripletSamplingError(f"image_target must be non-empty 1-D, got {image_target.shape}")
    if neighbours.ndim != 2 or distances_m.shape != neighbours.shape:
        raise TripletSamplingError(
            f"neighbours and distances_m must be 2-D of equal shape, got "
            f"{neighbours.shape} and {distances_m.shape}"
        )
    if image_target.min() < 0 or image_target.max() >= n_targets:
        raise TripletSamplingError(
            f"image_target values must lie in [0, {n_targets}), got "
            f"[{image_target.min()}, {image_target.max()}]"
        )
    if neighbours.size and (neighbours.min() < 0 or neighbours.max() >= n_targets):
        raise TripletSamplingError(f"neighbours values must lie in [0, {n_targets})")
    own = neighbours == np.arange(n_targets)[:, None]
    if own.any():
        row = int(np.flatnonzero(own.any(axis=1))[0])
        raise TripletSamplingError(f"target {row} lists itself among its neighbours")
    if not np.isfinite(distances_m).all() or (distances_m < 0).any():
        raise TripletSamplingError("distances_m must be finite and non-negative")
    descending = (np.diff(distances_m, axis=1) < 0).any(axis=1)
    if descending.any():
        row = int(np.flatnonzero(descending)[0])
        raise TripletSamplingError(f"distances_m row {row} is not in ascending order")


def quantile_band_edges(distances_m: np.ndarray, num_bands: int) -> np.ndarray:
    """(num_bands + 1,) strictly increasing float64 quantile edges of the distances.

    Tied quantiles are nudged up to the next float so bands stay ordered; such
    bands are empty. Without any distance the edges are 0, 1, ..., num_bands.
    """
    if distances_m.size == 0:
        return np.arange(num_bands + 1, dtype=np.float64)
    levels = np.linspace(0.0, 1.0, num_bands + 1)
    edges = np.quantile(distances_m.ravel(), levels).astype(np.float64)
    for i in range(1, len(edges)):
        edges[i] = max(edges[i], np.nextafter(edges[i - 1], np.inf))
    return edges


class TripletSampler:
    """Draws whole batches of (anchor, positive, negative) image rows per requested band."""

    def __init__(
        self,
        image_target: np.ndarray,
        neighbours: np.ndarray,
        distances_m: np.ndarray,
        *,
        num_bands: int,
        seed: int,
        far_band: bool = True,
    ) -> None:
        if num_bands < 1:
            raise TripletSamplingError(f"num_bands must be at least 1, got {num_bands}")
        for name, values in (("image_target", image_target), ("neighbours", neighbours)):
            if np.asarray(values).size and not np.issubdtype(np.asarray(values).dtype, np.integer):
                raise TripletSamplingError(f"{name} must hold integers, got {values.dtype}")
        targets = np.asarray(image_target, dtype=np.int64)
        neighbour_rows = np.asarray(neighbours, dtype=np.int64)
        self._distances_m = np.ascontiguousarray(distances_m)
        _validate_graph(targets, neighbour_rows, self._distances_m)
        # int32 halves the memory traffic of the random row gathers below.
        self._neighbours = np.ascontiguousarray(neighbour_rows, dtype=np.int32)
        self.num_bands = num_bands
        self.far_band = far_band
        self.num_arms = num_bands + 1 if far_band else num_bands
        self.n_targets, self.k = self._neighbours.shape
        self.image_target = targets
        self._index_images_by_target()
        self.band_edges_m = quantile_band_edges(self._distances_m, num_bands)
        self._column_bounds = self._band_column_bounds()
        self._build_anchor_pools()
        self._rng = np.random.Generator(np.random.PCG64(seed))

    def _index_images_by_target(self) -> None:
        """CSR of target -> image rows, and each image's slot inside its target."""
        self._images_by_target = np.argsort(self.image_target, kind="stable")
        self._image_count = np.bincount(self.image_target, minlength=self.n_targets)
        if (self._image_count == 0).any():
            missing = np.flatnonzero(self._image_count == 0)
            raise TripletSamplingError(
                f"{len(missing)} targets have no image (first: target {missing[0]}); "
                "every target of the neighbour graph needs at least one image"
            )
        self._image_start = np.concatenate(([0], np.cumsum(self._image_count)[:-1]))
        self._image_slot = np.empty_like(self._images_by_target)
        self._image_slot[self._images_by_target] = np.arange(len(self.image_target)) - np.repeat(
            self._image_start, self._image_count
        )
        self.num_single_image_targets = int((self._image_count == 1).sum())

    def _band_column_bounds(self) -> np.ndarray:
        """(n_targets, num_bands + 1) int32: band b of row t is columns [B[t, b], B[t, b+1])."""
        bounds = np.empty((self.n_targets, self.num_bands + 1), dtype=np.int32)
        bounds[:, 0] = 0
        bounds[:, -1] = self.k
        for band in range(1, self.num_bands):
            bounds[:, band] = (self._distances_m < self.band_edges_m[band]).sum(axis=1)
        return bounds

    def _build_anchor_pools(self) -> None:
        """Per arm, the anchor images whose target can produce a negative in that band."""
        has_candidate = np.diff(self._column_bounds, axis=1) > 0
        pools = [
            np.flatnonzero(has_candidate[self.image_target, band])
            for band in range(self.num_bands)
        ]
        if self.far_band:
            far_possible = self.n_targets > self.k + 1
            n_far = len(self.image_target) if far_possible else 0
            pools.append(np.arange(n_far, dtype=np.int64))
        sizes = np.array([len(p) for p in pools], dtype=np.int64)
        self._pool_images = np.concatenate(pools).astype(np.int64)
        self._pool_start = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        self._pool_size = sizes
        self.available = sizes > 0

    def _check_bands(self, bands: np.ndarray) -> None:
        if bands.ndim != 1:
            raise TripletSamplingError(f"bands must be 1-D, got shape {bands.shape}")
        outside = (bands < 0) | (bands >= self.num_arms)
        if outside.any():
            raise TripletSamplingError(f"band {bands[outside][0]} is outside [0, {self.num_arms})")
        unavailable = ~self.available[bands]
        if unavailable.any():
            raise TripletSamplingError(
                f"band {bands[unavailable][0]} is unavailable: no anchor has a candidate "
                f"negative in it (band edges in metres: {self.band_edges_m.tolist()})"
            )

    def _below(self, high: np.ndarray) -> np.ndarray:
        """Uniform integers in [0, high) per element (high >= 1).

        floor(u * high) from 53-bit uniforms: bias below high / 2**53, and several
        times faster than Generator.integers with an array bound.
        """
        draw = (self._rng.random(len(high)) * high).astype(np.int64)
        return np.minimum(draw, high - 1)

    def _image_of(self, targets: np.ndarray) -> np.ndarray:
        """A uniformly random image row of each target."""
        offset = self._below(self._image_count[targets])
        return self._images_by_target[self._image_start[targets] + offset]

    def _positives(self, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Another image of each anchor's target, or the anchor itself for single images."""
        targets = self.image_target[anchors]
        counts = self._image_count[targets]
        single = counts == 1
        draw = self._below(np.maximum(counts - 1, 1))
        own_slot = self._image_slot[anchors]
        slot = np.where(single, own_slot, draw + (draw >= own_slot))
        return self._images_by_target[self._image_start[targets] + slot], single

    def _band_negative_targets(self, targets: np.ndarray, bands: np.ndarray) -> np.ndarray:
        bound_at = targets * (self.num_bands + 1) + bands
        lo = self._column_bounds.ravel()[bound_at]
        hi = self._column_bounds.ravel()[bound_at + 1]
        columns = lo + self._below(hi - lo)
        return self._neighbours.ravel()[targets * self.k + columns].astype(np.int64)

    def _excluded(self, targets: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        rows = self._neighbours[targets]
        in_row = (rows == candidates.astype(np.int32)[:, None]).any(axis=1)
        return in_row | (candidates == targets)

    def _far_negative_targets(self, targets: np.ndarray) -> np.ndarray:
        """Uniform targets outside {anchor target} ∪ its neighbour row."""
        chosen = self._rng.integers(0, self.n_targets, size=len(targets))
        pending = np.flatnonzero(self._excluded(targets, chosen))
        for _ in range(_FAR_REJECTION_ROUNDS):
            if pending.size == 0:
                return chosen
            chosen[pending] = self._rng.integers(0, self.n_targets, size=len(pending))
            pending = pending[self._excluded(targets[pending], chosen[pending])]
        if pending.size:
            chosen[pending] = self._ranked_far_targets(targets[pending])
        return chosen

    def _ranked_far_targets(self, targets: np.ndarray) -> np.ndarray:
        """Exact uniform draw: pick a rank among allowed targets and skip the excluded ones."""
        rows = self._neighbours[targets].astype(np.int64)
        excluded = np.sort(np.column_stack((targets, rows)), axis=1)
        repeated = np.zeros_like(excluded, dtype=bool)
        repeated[:, 1:] = excluded[:, 1:] == excluded[:, :-1]
        excluded[repeated] = self.n_targets
        allowed = self.n_targets - (~repeated).sum(axis=1)
        chosen = self._below(allowed)
        for column in excluded.T:
            chosen += column <= chosen
        return chosen

    def sample(self, bands: np.ndarray) -> TripletBatch:
        """One triplet per entry of `bands` (arms from UCBBandit.allocate)."""
        bands = np.asarray(bands, dtype=np.int64)
        self._check_bands(bands)
        anchors = self._pool_images[self._pool_start[bands] + self._below(self._pool_size[bands])]
        positives, single = self._positives(anchors)
        targets = self.image_target[anchors]
        negative_targets = np.empty_like(targets)
        near = bands < self.num_bands
        negative_targets[near] = self._band_negative_targets(targets[near], bands[near])
        if not near.all():
            negative_targets[~near] = self._far_negative_targets(targets[~near])
        return TripletBatch(anchors, positives, self._image_of(negative_targets), bands, single)

    def sample_uniform_random(self, n: int) -> TripletBatch:
        """Ablation baseline: negative is a uniformly random image of any other target."""
        if self.n_targets < 2:
            raise TripletSamplingError("uniform negatives need at least two targets")
        n_images = len(self.image_target)
        anchors = self._rng.integers(0, n_images, size=n)
        positives, single = self._positives(anchors)
        targets = self.image_target[anchors]
        draw = self._below(n_images - self._image_count[targets])
        start = self._image_start[targets]
        position = draw + np.where(draw >= start, self._image_count[targets], 0)
        negatives = self._images_by_target[position]
        return TripletBatch(anchors, positives, negatives, np.full(n, -1, np.int64), single)

    def band_of(self, anchor_target: np.ndarray, negative_target: np.ndarray) -> np.ndarray:
        """Band of each target pair: its distance band, num_bands if not among the k nearest.

        -1 where the two targets are the same.
        """
        anchors = np.asarray(anchor_target, dtype=np.int64)
        others = np.asarray(negative_target, dtype=np.int64)
        match = self._neighbours[anchors] == others[:, None]
        bands = np.full(len(anchors), self.num_bands, dtype=np.int64)
        found = match.any(axis=1)
        if found.any():
            columns = match[found].argmax(axis=1)
            distances = self._distances_m[anchors[found], columns].astype(np.float64)
            near_band = np.searchsorted(self.band_edges_m, distances, side="right") - 1
            bands[found] = np.clip(near_band, 0, self.num_bands - 1)
        return np.where(anchors == others, -1, bands).astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        """RNG state and the data shape it belongs to, as plain Python types."""
        return {
            "rng": self._rng.bit_generator.state,
            "n_images": len(self.image_target),
            "n_targets": self.n_targets,
            "num_bands": self.num_bands,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the random stream of a sampler built on the same data."""
        expected = (len(self.image_target), self.n_targets, self.num_bands)
        found = (state.get("n_images"), state.get("n_targets"), state.get("num_bands"))
        if found != expected:
            raise TripletSamplingError(
                f"sampler state is for (n_images, n_targets, num_bands)={found}, "
                f"this sampler has {expected}"
            )
        self._rng.bit_generator.state = state["rng"]
