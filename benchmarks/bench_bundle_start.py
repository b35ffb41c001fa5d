"""Service start-to-ready time and resident memory, by bundle size.

For each bundle (published here from random vectors with the real serving model, or given
with --bundles), starts uvicorn as `geotriplet serve` does, several times, and measures:
  start to ready  from starting the process until GET /ready answers 200 (interpreter,
                  imports, bundle load with SHA-256 verification); for reference,
                  `load_bundle` alone in this process;
  memory          VmRSS (RssAnon + RssFile) of the server once ready and after some vector
                  queries; once ready, the difference to a tiny bundle's server per
                  1 000 000 vectors.
The bundle files are in the page cache (just written or read): these are warm starts.

    .venv/bin/python benchmarks/bench_bundle_start.py [--sizes 100000] [--bundles DIR ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from local_server import LocalServer
from serving_data import (
    DEFAULT_MODEL_SOURCE,
    ServingModel,
    bundle_bytes,
    publish_random_bundle,
    random_unit_vectors,
)

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.load import load_bundle
from geotriplet_assets.bundle.manifest import read_manifest
from geotriplet_assets.config import IndexConfig


@dataclass(frozen=True)
class Measured:
    count: int
    index_type: str
    files_gib: float
    ready_s: list[float]
    load_s: float
    memory_ready: dict[str, float]
    memory_queried: dict[str, float]


def measure(bundles_dir: Path, starts: int, queries: int, logs: Path) -> Measured:
    version = fmt.read_current_version(bundles_dir)
    if version is None:
        raise SystemExit(f"{bundles_dir} has no current bundle")
    manifest = read_manifest(bundles_dir / version)
    started = time.perf_counter()
    load_bundle(bundles_dir / version)
    load_s = time.perf_counter() - started
    ready_s = []
    for start in range(starts):
        log = logs / f"{version}-{start}.log"
        with LocalServer(bundles_dir, log) as server:
            ready_s.append(server.wait_ready())
            if start < starts - 1:
                continue
            memory_ready = server.memory_mib()
            vectors = random_unit_vectors(queries, manifest.embedding_dim, seed=3)
            with httpx.Client(base_url=server.url, timeout=60.0) as client:
                for vector in vectors:
                    answer = client.post("/similar", json={"vector": vector.tolist(), "k": 10})
                    answer.raise_for_status()
            memory_queried = server.memory_mib()
    return Measured(
        count=manifest.count,
        index_type=manifest.index.type,
        files_gib=bundle_bytes(bundles_dir / version) / 2**30,
        ready_s=ready_s,
        load_s=load_s,
        memory_ready=memory_ready,
        memory_queried=memory_queried,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument(
        "--bundles", type=Path, nargs="*", default=[], help="existing bundles dirs to measure"
    )
    parser.add_argument("--tiny", type=int, default=1000, help="size of the reference bundle")
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--model-from", type=Path, default=DEFAULT_MODEL_SOURCE, help="bundle(s) dir"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    model = ServingModel.from_bundle(args.model_from)
    workdir = Path(tempfile.mkdtemp(prefix="bench-start-"))
    published = {}
    try:
        directories = []
        for size in [args.tiny, *args.sizes]:
            directory = workdir / f"bundles-{size}"
            _, published[size] = publish_random_bundle(
                directory, model, size, IndexConfig(), seed=0
            )
            directories.append(directory)
        results = [
            measure(directory, args.starts, args.queries, workdir)
            for directory in [*directories, *args.bundles]
        ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    tiny = results[0]
    print(
        f"uvicorn service.app:create_app, default settings (SHA-256 verified on load), "
        f"{args.starts} starts each, warm page cache"
    )
    print(f"{'':51} {'RSS MiB once ready':^25} {f'after {args.queries} queries':^17}")
    print(
        f"{'vectors':>9} {'index':>6} {'files':>7} {'publish':>7} {'ready s':>11} "
        f"{'load s':>6} {'VmRSS':>7} {'RssAnon':>8} {'RssFile':>8} {'VmRSS':>8} "
        f"{'RssFile':>8} {'per 1M GiB':>10}"
    )
    for result in results:
        ready = f"{min(result.ready_s):.2f} ({np.median(result.ready_s):.2f})"
        publish = published.get(result.count)
        per_million = "-"
        if result is not tiny and result.count > tiny.count:
            growth = result.memory_ready["VmRSS"] - tiny.memory_ready["VmRSS"]
            per_million = f"{growth / 1024 / (result.count - tiny.count) * 1e6:.2f}"
        print(
            f"{result.count:9d} {result.index_type:>6} {result.files_gib:6.2f}G "
            f"{f'{publish:.1f}s' if publish is not None else 'given':>7} {ready:>11} "
            f"{result.load_s:6.2f} {result.memory_ready['VmRSS']:7.0f} "
            f"{result.memory_ready['RssAnon']:8.0f} {result.memory_ready['RssFile']:8.0f} "
            f"{result.memory_queried['VmRSS']:8.0f} {result.memory_queried['RssFile']:8.0f} "
            f"{per_million:>10}"
        )
    print(
        "ready s: best (median) from process start to /ready 200; load s: load_bundle in this "
        f"process; per 1M: VmRSS once ready above the {tiny.count}-vector bundle's, per "
        "1 000 000 vectors. RssFile grows with queries as pages of the memory-mapped "
        "vectors.npy are read (shared, reclaimable page cache; at most the file's size)."
    )
    print(
        f"1-min load average before/after (other processes share these cores): "
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
