"""Triplets/s of the vectorised band sampler against a per-item reimplementation of the original.

Both sides draw from the same in-memory float16 embeddings and KNN graph, in
one process. (1) is what training needs per batch: bandit allocation, whole-batch
sampling, per-triplet credit, periodic update, and gathering the anchor,
positive and negative embedding rows into one batch array. (2) redoes the
original's per-item loop (UCB argmax per sample, Python random choices of the
positive and of a negative from the neighbour row within the chosen band,
row-by-row gather) but without h5py reads or the original's dense distance
row, so it is faster than the original (~400 triplets/s there).

(3) is (1) with the embeddings read from a memory-mapped float16 .npy file, as training reads
each split's matrix (`training/embedding_matrix.py`), with the file in the page cache (it was
just written); target >= 100 000 triplets/s at 1 000 000 x 1280.

Usage: python benchmarks/bench_sampler.py [--images 1000000 --dim 1280 ...]
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from geotriplet_assets.geodesy import unit_vectors
from geotriplet_assets.geography.neighbours import exact_knn
from geotriplet_assets.training.triplet_sampler import TripletSampler
from geotriplet_assets.training.ucb_bandit import UCBBandit, triplet_rewards

MARGIN = 0.3
UPDATE_EVERY = 10
NUM_BANDS = 5
ALPHA = 2.0


def random_embeddings(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    embeddings = np.empty((n, dim), dtype=np.float16)
    for start in range(0, n, 65_536):
        rows = min(65_536, n - start)
        embeddings[start : start + rows] = rng.random((rows, dim), dtype=np.float32) - 0.5
    return embeddings


def clustered_targets(n_targets: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude of targets spread around 200 city centres."""
    centres_lat = rng.uniform(-50, 60, size=200)
    centres_lon = rng.uniform(-170, 170, size=200)
    city = rng.integers(0, 200, size=n_targets)
    lat = np.clip(centres_lat[city] + rng.normal(scale=0.05, size=n_targets), -89.9, 89.9)
    lon = np.clip(centres_lon[city] + rng.normal(scale=0.05, size=n_targets), -179.9, 179.9)
    return lat, lon


def images_per_target(n_images: int, n_targets: int, rng: np.random.Generator) -> np.ndarray:
    """Target of each image: every target gets one, the rest are spread at random."""
    extra = rng.integers(0, n_targets, size=n_images - n_targets)
    return rng.permutation(np.concatenate([np.arange(n_targets), extra]))


def run_vectorised(
    sampler: TripletSampler, embeddings: np.ndarray, batch: int, seconds: float
) -> tuple[int, float, float]:
    """Triplets drawn, seconds taken, and seconds of those spent gathering embeddings."""
    bandit = UCBBandit(sampler.num_arms, ALPHA, available=sampler.available)
    rng = np.random.default_rng(1)
    out = np.empty((3, batch, embeddings.shape[1]), dtype=embeddings.dtype)
    triplets, step, gather_s, start = 0, 0, 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        triplets_batch = sampler.sample(bandit.allocate(batch))
        gather_start = time.perf_counter()
        np.take(embeddings, triplets_batch.anchor, axis=0, out=out[0])
        np.take(embeddings, triplets_batch.positive, axis=0, out=out[1])
        np.take(embeddings, triplets_batch.negative, axis=0, out=out[2])
        gather_s += time.perf_counter() - gather_start
        losses = rng.random(batch) * 2 * MARGIN
        bandit.credit(triplets_batch.band, triplet_rewards(losses, MARGIN))
        step += 1
        if step % UPDATE_EVERY == 0:
            bandit.update()
        triplets += batch
    return triplets, time.perf_counter() - start, gather_s


class PerItemSampler:
    """The original's sampling, one triplet at a time, on in-memory arrays."""

    def __init__(
        self,
        image_target: np.ndarray,
        neighbours: np.ndarray,
        distances_m: np.ndarray,
        edges: np.ndarray,
    ) -> None:
        self.image_target = image_target
        self.neighbours = neighbours
        self.distances_m = distances_m
        self.bands = list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
        self.success = [0.5] * len(self.bands)
        self.attempts = [0] * len(self.bands)
        self.target_images: dict[int, list[int]] = {}
        for image, target in enumerate(image_target.tolist()):
            self.target_images.setdefault(target, []).append(image)
        self.random = random.Random(0)

    def _choose_band(self) -> int:
        total = sum(max(1, n) for n in self.attempts)
        scores = [
            (1.0 - s) + math.sqrt(ALPHA * math.log(total) / max(1, n))
            for s, n in zip(self.success, self.attempts, strict=True)
        ]
        return int(np.argmax(scores))

    def _negative(self, anchor: int, target: int) -> int:
        for lo, hi in self.bands[self._choose_band() :]:
            row = self.distances_m[target]
            columns = np.where((row >= lo) & (row <= hi))[0]
            candidates = [t for t in self.neighbours[target, columns].tolist() if t != target]
            if candidates:
                return self.random.choice(self.target_images[self.random.choice(candidates)])
        return self.random.randrange(len(self.image_target))

    def triplet(self, anchor: int) -> tuple[int, int, int]:
        target = int(self.image_target[anchor])
        others = [i for i in self.target_images[target] if i != anchor]
        positive = self.random.choice(others) if others else anchor
        return anchor, positive, self._negative(anchor, target)


def run_per_item(
    sampler: PerItemSampler, embeddings: np.ndarray, batch: int, seconds: float
) -> tuple[int, float]:
    out = np.empty((3, batch, embeddings.shape[1]), dtype=embeddings.dtype)
    n_images = len(embeddings)
    triplets, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for row in range(batch):
            anchor, positive, negative = sampler.triplet(sampler.random.randrange(n_images))
            out[0, row] = embeddings[anchor]
            out[1, row] = embeddings[positive]
            out[2, row] = embeddings[negative]
            triplets += 1
            if row % 256 == 0 and time.perf_counter() - start >= seconds:
                break
    return triplets, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--targets", type=int, default=250_000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per side")
    parser.add_argument("--store-dir", type=Path, default=None, help="for the .npy (TMPDIR)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    start = time.perf_counter()
    embeddings = random_embeddings(args.images, args.dim, rng)
    image_target = images_per_target(args.images, args.targets, rng)
    embeddings_s = time.perf_counter() - start
    graph = exact_knn(unit_vectors(*clustered_targets(args.targets, rng)), args.k)
    print(
        f"data: {args.images} x {args.dim} float16 ({embeddings_s:.1f} s), {args.targets} "
        f"targets, k={args.k} KNN ({time.perf_counter() - start - embeddings_s:.1f} s)"
    )

    start = time.perf_counter()
    sampler = TripletSampler(
        image_target, graph.indices, graph.distances_m, num_bands=NUM_BANDS, seed=0
    )
    print(
        f"sampler setup: {time.perf_counter() - start:.1f} s, "
        f"band edges (m): {np.round(sampler.band_edges_m, 1).tolist()}"
    )

    run_vectorised(sampler, embeddings, args.batch, 0.2)
    fast, fast_s, gather_s = run_vectorised(sampler, embeddings, args.batch, args.seconds)
    baseline = PerItemSampler(
        image_target, graph.indices, graph.distances_m, sampler.band_edges_m[: NUM_BANDS + 1]
    )
    slow, slow_s = run_per_item(baseline, embeddings, args.batch, args.seconds)
    fast_rate, slow_rate = fast / fast_s, slow / slow_s
    print(
        f"vectorised sampler + bandit + float16 gather: {fast_rate:,.0f} triplets/s "
        f"({fast} triplets, batch {args.batch}; {gather_s / fast_s:.0%} of the time in the "
        f"gather, sampling alone {fast / (fast_s - gather_s):,.0f} triplets/s)"
    )
    print(
        f"per-item reimplementation of the original (no h5py): {slow_rate:,.0f} triplets/s "
        f"({slow} triplets)"
    )
    print(f"ratio: {fast_rate / slow_rate:,.1f}x")

    with tempfile.TemporaryDirectory(dir=args.store_dir) as folder:
        path = Path(folder) / "train.npy"
        np.save(path, embeddings)
        mapped = np.load(path, mmap_mode="r")
        run_vectorised(sampler, mapped, args.batch, 0.2)
        fast_again, fast_again_s, _ = run_vectorised(sampler, embeddings, args.batch, args.seconds)
        mapped_n, mapped_s, mapped_gather_s = run_vectorised(
            sampler, mapped, args.batch, args.seconds
        )
        del mapped
    mapped_rate, memory_rate = mapped_n / mapped_s, fast_again / fast_again_s
    print(
        f"the same from a memory-mapped .npy in the page cache: {mapped_rate:,.0f} triplets/s "
        f"({mapped_gather_s / mapped_s:.0%} in the gather; in memory again, interleaved: "
        f"{memory_rate:,.0f}); ratio mapped/in-memory {mapped_rate / memory_rate:.2f}; "
        f"target >= 100,000: {'met' if mapped_rate >= 100_000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
