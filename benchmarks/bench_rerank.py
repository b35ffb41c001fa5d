"""Geometric re-ranking (`rerank` on POST /similar) against the plain search, on the same
queries, through the real service (FastAPI app, in process).

Every test-split image of the demo bundle whose building has another indexed view is queried
by `image_id` (its own row left out) at k=20, without and with `rerank` (the default 20
candidates), interleaved query by query; the rerank pass runs twice, first with an empty
feature cache (cold: every candidate's original is decoded and its ORB features extracted),
then warm. Figures: same-building recall@1, recall@1 at 25 m (the top hit recorded within 25 m
of the query), mAP@R over the 20 hits, p50/p99 latency, and the latency ratio against the
plain search of the same run. Then the two Leuven photos (Debian's opencv-doc) are added to
the demo bundle and each is queried for the other: its rank without and with re-ranking.

    .venv/bin/python benchmarks/bench_rerank.py [--bundles data/bundles] [--split test]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from latency import Latency

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.image_table import PATH_COLUMN
from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.config import IndexConfig
from geotriplet_assets.evaluation.localisation import held_out_rows
from geotriplet_assets.evaluation.retrieval_metrics import average_precision_at_r
from geotriplet_assets.geodesy import great_circle_m
from geotriplet_assets.serving.bundle_publish import publish_bundle
from service.app import create_app
from service.settings import ServiceSettings

K = 20
RADIUS_M = 25.0
LEUVEN = Path("/usr/share/doc/opencv-doc/examples/data")


def _client(bundles: Path) -> TestClient:
    return TestClient(create_app(ServiceSettings(bundles_dir=bundles, poll_interval_s=3600)))


def _ready(client: TestClient) -> None:
    deadline = time.monotonic() + 60
    while client.get("/ready").status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"the service did not get ready: {client.get('/ready').text}")
        time.sleep(0.1)


def _post(client: TestClient, body: dict) -> tuple[list[dict], float]:
    start = time.perf_counter()
    response = client.post("/similar", json=body)
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        raise SystemExit(f"/similar answered {response.status_code}: {response.text}")
    return response.json()["neighbours"], seconds


def _figures(bundle: LoadedBundle, rows: np.ndarray, answers: list[list[dict]]) -> dict:
    codes = bundle.images.building_code
    relevant = np.bincount(codes)[codes[rows]] - 1
    hit_rows = np.array([[bundle.row_of(hit["image_id"]) for hit in hits] for hits in answers])
    same = codes[hit_rows] == codes[rows][:, None]
    top = hit_rows[:, 0]
    near = (
        great_circle_m(
            bundle.images.lat[rows],
            bundle.images.lon[rows],
            bundle.images.lat[top],
            bundle.images.lon[top],
        )
        <= RADIUS_M
    )
    return {
        "recall@1": float(same[:, 0].mean()),
        "recall@1 25 m": float(near.mean()),
        "recall@10": float(same[:, :10].any(axis=1).mean()),
        "mAP@R": float(average_precision_at_r(same, np.minimum(relevant, K)).mean()),
    }


def _print_row(name: str, figures: dict, latency: Latency, base: Latency) -> None:
    values = "".join(f"{figures[key]:>15.3f}" for key in figures)
    print(
        f"  {name:<16}{values}{latency.p50_ms:>10.1f}{latency.p99_ms:>10.1f}"
        f"{latency.p50_ms / base.p50_ms:>10.1f}x"
    )


def demo_split(bundles: Path, split: str) -> None:
    version = fmt.read_current_version(bundles)
    if version is None:
        raise SystemExit(f"no bundle under {bundles}: run `make demo` first")
    bundle = load_bundle(bundles / version)
    rows = held_out_rows(bundle, split)
    image_ids = [bundle.images.image_id(int(row)) for row in rows]
    print(f"bundle {version}: {bundle.count} images; {len(rows)} {split} queries by image_id")
    with _client(bundles) as client:
        _ready(client)
        runs: dict[str, tuple[list, list]] = {name: ([], []) for name in ("plain", "cold", "warm")}
        for image_id in image_ids:
            for name, body in (
                ("plain", {"image_id": image_id, "k": K}),
                ("cold", {"image_id": image_id, "k": K, "rerank": True}),
            ):
                hits, seconds = _post(client, body)
                runs[name][0].append(hits)
                runs[name][1].append(seconds)
        for image_id in image_ids:
            hits, seconds = _post(client, {"image_id": image_id, "k": K, "rerank": True})
            runs["warm"][0].append(hits)
            runs["warm"][1].append(seconds)
    base = Latency.of(runs["plain"][1])
    header = "".join(f"{key:>15}" for key in ("recall@1", "recall@1 25 m", "recall@10", "mAP@R"))
    print(f"  {'':<16}{header}{'p50 ms':>10}{'p99 ms':>10}{'p50/plain':>11}")
    labels = {"plain": "plain search", "cold": "rerank, cold", "warm": "rerank, warm"}
    for name, (answers, seconds) in runs.items():
        _print_row(labels[name], _figures(bundle, rows, answers), Latency.of(seconds), base)


def leuven_ranks(bundles: Path) -> None:
    photos = {"leuven/leuvenA": LEUVEN / "leuvenA.jpg", "leuven/leuvenB": LEUVEN / "leuvenB.jpg"}
    if not all(path.is_file() for path in photos.values()):
        print("\nLeuven pair: skipped, Debian's opencv-doc is not installed")
        return
    source = bundles / (fmt.read_current_version(bundles) or "")
    bundle = load_bundle(source)
    if bundle.manifest.images_root is None:
        raise SystemExit(f"{source} records no originals: rebuild it with `make demo`")
    pixels = np.stack([bundle.decode(path.read_bytes()) for path in photos.values()])
    vectors = np.concatenate([np.load(source / fmt.VECTORS), bundle.embed(pixels)])
    city = pd.read_parquet(source / fmt.IMAGES)
    # One images_root for both sets of originals: the filesystem root, paths relative to it.
    city[PATH_COLUMN] = [
        str((bundle.manifest.images_root / path).relative_to("/")) for path in city[PATH_COLUMN]
    ]
    leuven = pd.DataFrame(
        {
            "image_id": list(photos),
            "dataset_id": 9999,
            "target_id": 1,
            "patch_id": [1, 2],
            "lat": 50.8789,
            "lon": 4.7010,
            "split": "test",
            PATH_COLUMN: [str(path.relative_to("/")) for path in photos.values()],
        }
    )
    with tempfile.TemporaryDirectory() as scratch:
        merged = Path(scratch) / "bundles"
        publish_bundle(
            merged,
            model_path=source / fmt.MODEL,
            preprocessing=bundle.preprocessing,
            decode_limits=bundle.decode_limits,
            vectors=vectors,
            images=pd.concat([city, leuven], ignore_index=True),
            index_settings=IndexConfig(),
            model_info=dict(bundle.manifest.raw["model"]),
            inputs={"demo_bundle": bundle.version},
            images_root=Path("/"),
        )
        print(f"\nLeuven pair among the {bundle.count} demo images: the partner's rank (k={K})")
        with _client(merged) as client:
            _ready(client)
            for query, partner in (
                ("leuven/leuvenA", "leuven/leuvenB"),
                ("leuven/leuvenB", "leuven/leuvenA"),
            ):
                ranks = []
                for rerank in (False, True):
                    hits, _ = _post(client, {"image_id": query, "k": K, "rerank": rerank})
                    ids = [hit["image_id"] for hit in hits]
                    ranks.append(ids.index(partner) + 1 if partner in ids else None)
                    inliers = hits[ids.index(partner)]["inliers"] if partner in ids else None
                print(
                    f"  {query}: rank {ranks[0]} plain, {ranks[1]} with rerank ({inliers} inliers)"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, default=Path("data/bundles"))
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    demo_split(args.bundles, args.split)
    leuven_ranks(args.bundles)
    print(
        f"\n1-min load average before/after (other processes share these cores): "
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
