"""Search by vector: the index the config chooses against exact flat search, one query at a time.

Publishes a bundle of N random unit vectors (the serving model's dimension) with
`publish_bundle`, loads it with `geotriplet_assets.bundle.load.load_bundle`, and times in
process, interleaved query by query on fresh random queries:
  index    LoadedBundle.search (what the service does: FAISS, exact re-scoring, metadata);
  exact    the same Searcher over an exact flat index of the same vectors: the baseline;
  and bare `index.search` of both for reference. Recall@10 of the index against exact.
Then a sweep of the index's search-time parameter (HNSW ef_search, IVF nprobe) on the bare
index. Target: p50 <= 2 ms through LoadedBundle.search.

Uniform random unit vectors (`--data uniform`) have no structure for an approximate index to
exploit, so their recall is a pessimistic figure for real embeddings; `--data buildings`
clusters them as building embeddings are (5 views per building, buildings in districts) and
queries with new views of indexed buildings.

    .venv/bin/python benchmarks/bench_search.py [--vectors 1000000] [--index auto|hnsw|ivfpq]
        [--data uniform|buildings]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from latency import Latency
from serving_data import (
    DEFAULT_MODEL_SOURCE,
    ServingModel,
    building_like_queries,
    bundle_bytes,
    publish_random_bundle,
    random_unit_vectors,
)

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.bundle.search import Searcher, SearchQuery, configure_index
from geotriplet_assets.config import IndexConfig

TARGET_P50_MS = 2.0
SWEEP = {"hnsw": ("ef_search", (32, 64, 128, 256, 512)), "ivfpq": ("nprobe", (8, 16, 32, 64, 128))}


@dataclass
class Samples:
    """Per query: wall seconds, CPU seconds of this process (all threads), recall@k."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)


def overlap(found: np.ndarray, truth: np.ndarray) -> float:
    return len(np.intersect1d(found, truth)) / len(truth)


def timed(run: Callable[[], np.ndarray]) -> tuple[float, float, np.ndarray]:
    """Wall and CPU seconds of RUN, and what it returned. CPU time hardly depends on what
    else runs on the machine; wall time does."""
    cpu = time.process_time()
    wall = time.perf_counter()
    rows = run()
    return time.perf_counter() - wall, time.process_time() - cpu, rows


def measure(
    bundle: LoadedBundle,
    exact: Searcher,
    flat: faiss.Index,
    queries: np.ndarray,
    k: int,
    warmup: int,
) -> dict[str, Samples]:
    """Latencies and recall@k against exact of each way to search, per query."""

    def via(searcher: Callable, vector: np.ndarray) -> Callable[[], np.ndarray]:
        return lambda: np.array([hit.row for hit in searcher([SearchQuery(vector, k)])[0]])

    def bare(index: faiss.Index, vector: np.ndarray) -> Callable[[], np.ndarray]:
        return lambda: index.search(vector[None, :], k)[1][0]

    def every_core(run: Callable[[], np.ndarray]) -> Callable[[], np.ndarray]:
        def run_on_every_core() -> np.ndarray:
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            try:
                return run()
            finally:
                faiss.omp_set_num_threads(threads)

        return run_on_every_core

    names = ("index", "exact", "bare index", "bare exact", "bare exact every core")
    results = {name: Samples() for name in names}
    for position, vector in enumerate(queries):
        runs = {
            "index": via(bundle.search, vector),
            "exact": via(exact.search, vector),
            "bare index": bare(bundle.index, vector),
            "bare exact": bare(flat, vector),
            "bare exact every core": every_core(bare(flat, vector)),
        }
        # A different order for each query: drift in machine load hits all alike.
        order = np.roll(np.arange(len(names)), position)
        measured = {names[i]: timed(runs[names[i]]) for i in order}
        if position < warmup:
            continue
        truth = measured["bare exact"][2]
        for name, (wall, cpu, found) in measured.items():
            results[name].wall.append(wall)
            results[name].cpu.append(cpu)
            results[name].recall.append(overlap(found, truth))
    return results


def sweep(
    index: faiss.Index, kind: str, queries: np.ndarray, truths: list[np.ndarray], k: int
) -> list[tuple[int, Samples]]:
    """The bare index's samples for each value of its search-time parameter."""
    name, values = SWEEP[kind]
    rows = []
    for value in values:
        configure_index(index, {name: value})
        samples = Samples()
        for vector, truth in zip(queries, truths, strict=True):
            wall, cpu, found = timed(lambda v=vector: index.search(v[None, :], k)[1][0])
            samples.wall.append(wall)
            samples.cpu.append(cpu)
            samples.recall.append(overlap(found, truth))
        rows.append((value, samples))
    return rows


def row(label: str, samples: Samples) -> str:
    wall, cpu = Latency.of(samples.wall), Latency.of(samples.cpu)
    return (
        f"{label:36} {wall.p50_ms:8.3f} {wall.p99_ms:8.3f} {cpu.p50_ms:8.3f} "
        f"{np.mean(samples.recall):9.3f}"
    )


def existing_bundle(location: Path) -> Path:
    """LOCATION itself, or the bundle its `current` names."""
    if (location / fmt.MANIFEST).is_file():
        return location
    version = fmt.read_current_version(location)
    if version is None:
        raise SystemExit(f"{location} is neither a bundle nor a bundles dir with `current`")
    return location / version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--index", choices=("auto", "flat", "hnsw", "ivfpq"), default="auto")
    parser.add_argument(
        "--data",
        choices=("uniform", "buildings"),
        default="uniform",
        help="uniform random directions (no structure: the worst case for recall), or "
        "building-like clusters (5 views per building, buildings in districts)",
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--sweep-queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--model-from", type=Path, default=DEFAULT_MODEL_SOURCE, help="bundle(s) dir"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="publish into this bundles dir (older bundles there are deleted) and keep it",
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="measure this existing bundle (or bundles dir) instead of publishing one",
    )
    parser.add_argument(
        "--search-threads",
        type=int,
        default=1,
        help="FAISS OpenMP threads for the searches (default 1, as the service; the index "
        "build uses every core)",
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    bundles_dir = args.keep or Path(tempfile.mkdtemp(prefix="bench-search-"))
    publish_s = None
    try:
        if args.bundle is None:
            model = ServingModel.from_bundle(args.model_from)
            published, publish_s = publish_random_bundle(
                bundles_dir,
                model,
                args.vectors,
                IndexConfig(type=args.index),
                args.seed,
                keep=1,
                data=args.data,
            )
            bundle_path = published.path
        else:
            bundle_path = existing_bundle(args.bundle)
        faiss.omp_set_num_threads(args.search_threads)
        started = time.perf_counter()
        bundle = load_bundle(bundle_path, search_threads=args.search_threads)
        load_s = time.perf_counter() - started
        flat = faiss.IndexFlatIP(bundle.dim)
        flat.add(np.ascontiguousarray(bundle.vectors))
        exact = Searcher(flat, bundle.vectors, bundle.images, threads=args.search_threads)
        query_count = args.warmup + args.queries
        if args.data == "buildings":
            queries = building_like_queries(
                query_count, bundle.count, bundle.dim, args.seed, args.seed + 1
            )
        else:
            queries = random_unit_vectors(query_count, bundle.dim, args.seed + 1)
        results = measure(bundle, exact, flat, queries, args.k, args.warmup)
        sweep_queries = queries[args.warmup : args.warmup + args.sweep_queries]
        truths = [flat.search(q[None, :], args.k)[1][0] for q in sweep_queries]
        kind = bundle.index_type
        swept = sweep(bundle.index, kind, sweep_queries, truths, args.k) if kind in SWEEP else []
        size_gib = bundle_bytes(bundle_path) / 2**30
    finally:
        if args.keep is None:
            shutil.rmtree(bundles_dir, ignore_errors=True)

    entry = bundle.manifest.raw["index"]
    print(
        f"{bundle.count} random unit vectors ({args.data}) of dimension {bundle.dim}, "
        f"k={args.k}, {args.queries} fresh queries one at a time, FAISS threads "
        f"{faiss.omp_get_max_threads()}"
    )
    if publish_s is None:
        print(f"given bundle {bundle_path}: {kind} {entry['params']}")
    else:
        print(f"index chosen by the config (type {args.index}): {kind} {entry['params']}")
        print(f"publish_bundle {publish_s:.1f} s (index build, build-time recall, files, hashes)")
    print(f"bundle {size_gib:.2f} GiB; load_bundle {load_s:.1f} s")
    print(
        f"build-time recall@10 (manifest, {entry['recall_queries']} indexed rows as queries): "
        f"{entry['recall_at_10']:.3f}"
    )
    print(f"{'':36} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>8} {'recall@' + str(args.k):>9}")
    labels = {
        "index": f"{kind} via LoadedBundle.search",
        "exact": "exact flat, same Searcher (baseline)",
        "bare index": f"{kind} bare index.search",
        "bare exact": "exact flat bare index.search",
        "bare exact every core": "  the same on every core",
    }
    for name, label in labels.items():
        print(row(label, results[name]))
    p50 = {name: Latency.of(samples.wall).p50_ms for name, samples in results.items()}
    cpu = {name: Latency.of(samples.cpu).p50_ms for name, samples in results.items()}
    print(
        f"p50 exact/{kind}: {p50['exact'] / p50['index']:.1f}x (bare exact on every core/{kind}: "
        f"{p50['bare exact every core'] / p50['index']:.1f}x); target p50 <= {TARGET_P50_MS} ms: "
        f"{'met' if p50['index'] <= TARGET_P50_MS else 'NOT met'} ({p50['index']:.3f} ms; CPU "
        f"{cpu['index']:.3f} ms); LoadedBundle.search over bare index.search at p50: "
        f"+{p50['index'] - p50['bare index']:.3f} ms"
    )
    if swept:
        print(f"bare {kind}, {args.sweep_queries} queries, by {SWEEP[kind][0]}:")
        for value, samples in swept:
            print(row(f"  {SWEEP[kind][0]} {value}", samples))
    print(
        f"1-min load average before/after (other processes share these cores): "
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
