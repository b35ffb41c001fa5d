"""Thumbnails: `GET /images/{image_id}/thumbnail` made from the original photo (cold) against
the same request answered from the in-memory cache, through the real service (FastAPI app,
in process), and a conditional request answered 304 from the ETag.

Each of N indexed images is requested once at each size with an empty cache (decode of the
original under the bundle's `images_root`, resize, JPEG encode), then again (cached), then
with `If-None-Match` (304, no body). The originals are in the page cache (the pipeline read
them), so "cold" is the decode and encode, not a disk read.

    .venv/bin/python benchmarks/bench_thumbnails.py [--bundles data/bundles] [--images 200]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from fastapi.testclient import TestClient
from latency import Latency
from PIL import Image

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.load import load_bundle
from service.app import create_app
from service.settings import ServiceSettings

SIZES = (128, 256, 512)


def _get(client: TestClient, url: str, expected: int, headers: dict | None = None) -> tuple:
    start = time.perf_counter()
    response = client.get(url, headers=headers or {})
    seconds = time.perf_counter() - start
    if response.status_code != expected:
        raise SystemExit(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    return response, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, default=Path("data/bundles"))
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    version = fmt.read_current_version(args.bundles)
    if version is None:
        raise SystemExit(f"no bundle under {args.bundles}: run `make demo` first")
    bundle = load_bundle(args.bundles / version)
    root = bundle.manifest.images_root
    if root is None:
        raise SystemExit(f"bundle {version} records no images_root: rebuild it (`make demo`)")
    step = max(1, bundle.count // args.images)
    rows = list(range(0, bundle.count, step))[: args.images]
    image_ids = [bundle.images.image_id(row) for row in rows]
    first = root / (bundle.images.path(rows[0]) or "")
    with Image.open(first) as original:
        shape = f"{original.width}x{original.height} {original.format}"
    print(
        f"bundle {version}: {len(image_ids)} of {bundle.count} images, originals {shape} "
        f"({first.stat().st_size / 1024:.0f} KiB) under {root}"
    )
    load_before = os.getloadavg()[0]
    settings = ServiceSettings(
        bundles_dir=args.bundles, poll_interval_s=3600, thumbnail_cache_bytes=512 * 1024 * 1024
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"the service did not get ready: {client.get('/ready').text}")
            time.sleep(0.1)
        print(f"{'size':>6}{'KiB':>7}   {'p50 ms':>8}{'p99 ms':>8}   cold / cached / 304")
        for size in SIZES:
            urls = [f"/images/{image_id}/thumbnail?size={size}" for image_id in image_ids]
            cold, cached, conditional, kib = [], [], [], []
            for url in urls:
                response, seconds = _get(client, url, 200)
                cold.append(seconds)
                kib.append(len(response.content) / 1024)
            for url in urls:
                response, seconds = _get(client, url, 200)
                cached.append(seconds)
                etag = response.headers["etag"]
                _, seconds = _get(client, url, 304, {"If-None-Match": etag})
                conditional.append(seconds)
            figures = {
                name: Latency.of(s)
                for name, s in (("cold", cold), ("cached", cached), ("304", conditional))
            }
            for name, latency in figures.items():
                print(
                    f"{size:>6}{sum(kib) / len(kib):>7.1f}   {latency.p50_ms:8.2f}"
                    f"{latency.p99_ms:8.2f}   {name}"
                )
            ratio = figures["cold"].p50_ms / figures["cached"].p50_ms
            print(f"        p50 cold/cached: {ratio:.1f}x")
    print(
        f"1-min load average before/after (other processes share these cores): "
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
