"""Where was this photo taken: `POST /locate`'s estimate against the top hit of `POST /similar`,
on the same queries, through the real service (FastAPI app, in process).

Every test-split image of the bundle whose building has another indexed view is queried by
`image_id` (its own row left out, as the service always does) on both endpoints, at the
bundle's `locate.k`; the error is the great-circle distance from the answer's position (the
estimate; the first neighbour's) to the image's recorded one. Then the same with
`exclude_same_building`: a building the index has never seen, located from its neighbours
alone. Latency: the two endpoints interleaved query by query, p50 and p99.

    .venv/bin/python benchmarks/bench_locate.py [--bundles data/bundles] [--split test]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from latency import Latency

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.load import load_bundle
from geotriplet_assets.evaluation.localisation import held_out_rows
from geotriplet_assets.evaluation.location_errors import ErrorSummary
from geotriplet_assets.geodesy import great_circle_m
from service.app import create_app
from service.settings import ServiceSettings


@dataclass
class Answers:
    """Per query: the answered position (NaN where none) and the request's wall seconds."""

    lat: list[float] = field(default_factory=list)
    lon: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, lat: float | None, lon: float | None, seconds: float) -> None:
        self.lat.append(np.nan if lat is None else lat)
        self.lon.append(np.nan if lon is None else lon)
        self.seconds.append(seconds)

    def errors_m(self, true_lat: np.ndarray, true_lon: np.ndarray) -> np.ndarray:
        lat, lon = np.asarray(self.lat), np.asarray(self.lon)
        answered = np.isfinite(lat)
        errors = np.full(len(lat), np.inf)
        errors[answered] = great_circle_m(
            true_lat[answered], true_lon[answered], lat[answered], lon[answered]
        )
        return errors


def _post(client: TestClient, path: str, body: dict) -> tuple[dict, float]:
    start = time.perf_counter()
    response = client.post(path, json=body)
    seconds = time.perf_counter() - start
    if response.status_code != 200:
        raise SystemExit(f"{path} answered {response.status_code}: {response.text}")
    return response.json(), seconds


def query_both(
    client: TestClient, image_ids: list[str], k: int, exclude_same_building: bool
) -> tuple[Answers, Answers]:
    located, top1 = Answers(), Answers()
    for image_id in image_ids:
        body = {"image_id": image_id, "k": k, "exclude_same_building": exclude_same_building}
        answer, seconds = _post(client, "/locate", body)
        located.add(answer["lat"], answer["lon"], seconds)
        answer, seconds = _post(client, "/similar", body)
        first = answer["neighbours"][0] if answer["neighbours"] else {}
        top1.add(first.get("lat"), first.get("lon"), seconds)
    return located, top1


def _row(name: str, summary: ErrorSummary, latency: Latency) -> str:
    within = "  ".join(f"{100 * summary.within[m]:6.1f}" for m in sorted(summary.within))
    return (
        f"  {name:<22}{summary.median_m:10.1f}{summary.p90_m:12.0f}  {within}"
        f"{latency.p50_ms:9.2f}{latency.p99_ms:9.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=Path, default=Path("data/bundles"))
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    version = fmt.read_current_version(args.bundles)
    if version is None:
        raise SystemExit(f"no bundle under {args.bundles}: run `make demo` first")
    bundle = load_bundle(args.bundles / version)
    rows = held_out_rows(bundle, args.split)
    if not len(rows):
        raise SystemExit(f"no {args.split} image of {version} has another view of its building")
    image_ids = [bundle.images.image_id(int(row)) for row in rows]
    true_lat, true_lon = bundle.images.lat[rows], bundle.images.lon[rows]
    k, radius = bundle.manifest.locate.k, bundle.manifest.locate.cluster_radius_m
    print(
        f"bundle {version}: {bundle.count} images; {len(rows)} {args.split} queries by "
        f"image_id (own row left out); /locate k={k}, cluster radius {radius:g} m; "
        f"/similar k={k}, its first neighbour's position"
    )
    load_before = os.getloadavg()[0]
    app = create_app(ServiceSettings(bundles_dir=args.bundles, poll_interval_s=3600))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"the service did not get ready: {client.get('/ready').text}")
            time.sleep(0.1)
        for exclude in (False, True):
            located, top1 = query_both(client, image_ids, k, exclude)
            summaries = {
                "POST /locate": ErrorSummary.of(located.errors_m(true_lat, true_lon)),
                "top hit of /similar": ErrorSummary.of(top1.errors_m(true_lat, true_lon)),
            }
            latencies = {
                "POST /locate": Latency.of(located.seconds),
                "top hit of /similar": Latency.of(top1.seconds),
            }
            print(
                "\nits own building's other views indexed (as for a new photo of a known building)"
                if not exclude
                else "\nexclude_same_building (a building the index has never seen)"
            )
            distances = "  ".join(
                f"{int(m) if m < 1000 else '1km':>6}"
                for m in sorted(summaries["POST /locate"].within)
            )
            print(
                f"  {'':<22}{'median m':>10}{'p90 m':>12}  {distances}{'p50 ms':>9}{'p99 ms':>9}"
            )
            for name, summary in summaries.items():
                print(_row(name, summary, latencies[name]))
            ours, theirs = summaries["POST /locate"], summaries["top hit of /similar"]
            print(
                f"  median error top-1/locate: {theirs.median_m / max(ours.median_m, 1e-9):.3f}; "
                f"within 25 m locate-top-1: {100 * (ours.within[25.0] - theirs.within[25.0]):+.1f}"
                f" points; p50 latency locate/similar: "
                f"{latencies['POST /locate'].p50_ms / latencies['top hit of /similar'].p50_ms:.3f}"
            )
    print(
        f"\n1-min load average before/after (other processes share these cores): "
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
