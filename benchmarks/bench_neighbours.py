"""Benchmark exact geographic KNN: 1M targets with the KD-tree, and KD-tree vs brute force.

Usage: python benchmarks/bench_neighbours.py [--targets 1000000] [--k 50] [--brute-targets 20000]

The large run happens in a child process so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np

from geotriplet_assets.geodesy import unit_vectors
from geotriplet_assets.geography.neighbours import NeighbourGraph, brute_force_knn, exact_knn

CITY_CENTRES = [
    (51.51, -0.13),
    (48.86, 2.35),
    (40.71, -74.01),
    (37.77, -122.42),
    (-33.87, 151.21),
    (35.68, 139.69),
    (-16.80, 179.99),
    (64.15, -21.94),
]


def synthetic_targets(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors: 90% in 8 city-sized clusters (~10 km), 10% uniform, 1% duplicates."""
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon = rng.uniform(-180, 180, n)
    in_city = rng.random(n) < 0.9
    city = rng.integers(0, len(CITY_CENTRES), in_city.sum())
    centres = np.asarray(CITY_CENTRES)[city]
    lat[in_city] = np.clip(centres[:, 0] + rng.normal(0, 0.05, city.size), -90, 90)
    lon[in_city] = (centres[:, 1] + rng.normal(0, 0.07, city.size) + 180) % 360 - 180
    vectors = unit_vectors(lat, lon)
    copies = rng.integers(0, n, n // 100)
    vectors[rng.integers(0, n, copies.size)] = vectors[copies]
    return vectors


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB


def large_run(n: int, k: int) -> None:
    vectors = synthetic_targets(n)
    before = peak_rss_gib()
    start = time.perf_counter()
    graph = exact_knn(vectors, k)
    seconds = time.perf_counter() - start
    assert graph.indices.shape == (n, min(k, n - 1))
    print(
        f"knn {n} targets k={k}: {seconds:.1f} s, peak RSS {peak_rss_gib():.2f} GiB "
        f"({before:.2f} GiB before the query)",
        flush=True,
    )


def same_neighbours(a: NeighbourGraph, b: NeighbourGraph) -> bool:
    """Equal distances everywhere; equal indices wherever the distance is not tied."""
    if not np.array_equal(a.distances_m, b.distances_m):
        return False
    d = a.distances_m
    untied = np.ones(d.shape, dtype=bool)
    untied[:, 1:] &= d[:, 1:] != d[:, :-1]
    untied[:, :-1] &= d[:, :-1] != d[:, 1:]
    untied &= d != d[:, -1:]
    return bool(np.array_equal(a.indices[untied], b.indices[untied]))


def comparison_run(n: int, k: int) -> None:
    vectors = synthetic_targets(n, seed=1)
    start = time.perf_counter()
    tree_graph = exact_knn(vectors, k)
    tree_s = time.perf_counter() - start
    start = time.perf_counter()
    brute_graph = brute_force_knn(vectors, k)
    brute_s = time.perf_counter() - start
    identical = same_neighbours(tree_graph, brute_graph)
    print(f"kdtree {n} targets k={k}: {tree_s:.2f} s; brute force: {brute_s:.2f} s")
    print(f"ratio brute/kdtree at {n}: {brute_s / tree_s:.1f}x, identical neighbours: {identical}")
    assert identical, "KD-tree and brute force disagree"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--brute-targets", type=int, default=20_000)
    parser.add_argument("--large-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_only:
        large_run(args.targets, args.k)
        return
    child = [sys.executable, __file__, "--large-only", f"--targets={args.targets}"]
    subprocess.run([*child, f"--k={args.k}"], check=True)
    comparison_run(args.brute_targets, args.k)


if __name__ == "__main__":
    main()
