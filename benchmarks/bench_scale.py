"""The whole asset graph at N images: wall time and peak memory per asset, and their growth.

For each N it generates a scale city (`geotriplet synth --preset scale --images N`: real
17-number `d` lines, 2 to 7 views a building, 8 regions, 48 px JPEGs), then runs the real
`geotriplet materialize` on a fresh data root in a subprocess with the default backbone
(tf_efficientnet_lite0, packaged weights) at a small input size (data.image_size, so D stays
1280), while a thread samples the memory of that process and all its children. Each asset's
time is Dagster's own, from its STEP_START to its STEP_SUCCESS event in the run records; its
memory is the peak of the samples taken in that window:

  rss     the largest VmRSS of any one process of the tree (what an OOM killer looks at)
  anon    RssAnon summed over the tree (heap and arrays; memory-mapped files in the page
          cache are not in it)

The first backbone_embeddings partition is listed apart: it exports and loads the backbone
into an emptied cache (the cold start; with the cache shared across data roots only a new
machine pays it, `bench_cold_start.py`); the others reuse that export. The service is then
started on the published bundle (`geotriplet serve`'s uvicorn) and its start-to-ready time
and anonymous memory are measured. Each size's figures are saved as JSON under the work
folder; the table covers every size saved there, with each column's growth exponent between
the two largest (t ~ N^e).

    .venv/bin/python benchmarks/bench_scale.py --sizes 10000 100000 [--work-dir DIR]
    .venv/bin/python benchmarks/bench_scale.py --table   # the table of the sizes saved
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from local_server import LocalServer
from process_memory import TreeSampler

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.manifest import read_manifest
from geotriplet_assets.synth.output_dir import read_manifest as read_synth_manifest

REPOSITORY = Path(__file__).resolve().parent.parent
GEOTRIPLET = Path(sys.executable).parent / "geotriplet"
STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}
GIB = 1 << 30
FIRST_PARTITION = "backbone_embeddings (first partition, cold)"
OTHER_PARTITIONS = "backbone_embeddings (other partitions)"


def config_text(root: Path, image_size: int) -> str:
    return (
        f"data: {{root: {root / 'data'}, input_dir: {root / 'city'}, image_size: {image_size}}}\n"
        "model: {backbone: tf_efficientnet_lite0, backbone_weights: package}\n"
    )


def generate(root: Path, images: int, seed: int, workers: int) -> float:
    """Seconds spent generating; 0 when ROOT/city already holds this size and seed."""
    city = root / "city"
    settings = (read_synth_manifest(city) or {}).get("config", {})
    if settings == {**settings, "preset": "scale", "images": images, "seed": seed}:
        return 0.0
    started = time.perf_counter()
    subprocess.run(
        [
            *(str(GEOTRIPLET), "synth", "--preset", "scale", "--images", str(images)),
            *("--seed", str(seed), "--workers", str(workers), "--out", str(city)),
        ],
        check=True,
    )
    return time.perf_counter() - started


def step_windows(dagster_home: Path) -> list[dict]:
    """(step, partition, start, end) of every step of every run in the instance, in order."""
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    windows = []
    for record in instance.get_run_records(ascending=True):
        run = record.dagster_run
        partition = run.tags.get("dagster/partition")
        started: dict[str, float] = {}
        for entry in instance.all_logs(run.run_id, of_type=STEP_EVENTS):
            event = entry.dagster_event
            if event.event_type == dg.DagsterEventType.STEP_START:
                started[entry.step_key] = entry.timestamp
            else:
                windows.append(
                    {
                        "step": entry.step_key,
                        "partition": partition,
                        "start": started.pop(entry.step_key),
                        "end": entry.timestamp,
                        "ok": event.event_type == dg.DagsterEventType.STEP_SUCCESS,
                    }
                )
    return sorted(windows, key=lambda w: w["start"])


def per_asset(windows: list[dict], sampler: TreeSampler) -> dict[str, dict[str, float]]:
    """Seconds (summed over partitions) and peak memory per step; partitions after the first
    of backbone_embeddings grouped apart from it."""
    rows: dict[str, dict[str, float]] = {}
    first_partition = None
    for window in windows:
        name = window["step"]
        if name == "backbone_embeddings":
            first_partition = first_partition or window["partition"]
            name = FIRST_PARTITION if window["partition"] == first_partition else OTHER_PARTITIONS
        peak = sampler.peak(window["start"], window["end"])
        row = rows.setdefault(name, {"seconds": 0.0, "rss": 0, "anon": 0, "count": 0})
        row["seconds"] += window["end"] - window["start"]
        row["rss"] = max(row["rss"], peak["max_rss"])
        row["anon"] = max(row["anon"], peak["sum_anon"])
        row["count"] += 1
    return rows


def measure(root: Path, images: int, image_size: int, seed: int, workers: int) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    generated_s = generate(root, images, seed, workers)
    shutil.rmtree(root / "data", ignore_errors=True)  # a fresh data root: a cold start
    config = root / "config.yaml"
    config.write_text(config_text(root, image_size))
    cache = root / "backbone_cache"  # emptied: the first partition pays the export (cold)
    shutil.rmtree(cache, ignore_errors=True)
    environment = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    environment["GEOTRIPLET_CACHE_DIR"] = str(cache)
    log = root / "materialize.log"
    started = time.time()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(GEOTRIPLET), "--config", str(config), "materialize"],
            cwd=REPOSITORY,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        with TreeSampler(process.pid) as sampler:
            status = process.wait()
    wall_s = time.time() - started
    if status != 0:
        raise SystemExit(f"materialize exited {status} at N={images}; see {log}")
    data = root / "data"
    assets = per_asset(step_windows(data / "dagster_home"), sampler)
    whole = sampler.peak()
    bundles = data / "bundles"
    manifest = read_manifest(bundles / str(fmt.read_current_version(bundles))).raw
    with LocalServer(bundles, root / "service.log") as server:
        ready_s = server.wait_ready()
        service = server.memory_mib()
    result = {
        "images": images,
        "catalogued": int(manifest["count"]),
        "image_size": image_size,
        "generated_s": generated_s,
        "wall_s": wall_s,
        "peak_rss": whole["max_rss"],
        "peak_anon": whole["sum_anon"],
        "assets": assets,
        "index": manifest["index"],
        "service_ready_s": ready_s,
        "service_mib": service,
    }
    (root / "result.json").write_text(json.dumps(result, indent=2))
    return result


def _exponent(small: float, large: float, n_small: int, n_large: int) -> str:
    if small <= 0 or large <= 0:
        return "-"
    return f"{math.log(large / small) / math.log(n_large / n_small):5.2f}"


def print_table(results: list[dict]) -> None:
    results = sorted(results, key=lambda r: r["images"])
    sizes = [r["images"] for r in results]
    names = list(dict.fromkeys(name for r in results for name in r["assets"]))
    head = "".join(f"{n:>10,} s  rss GiB anon GiB" for n in sizes)
    print(f"{'asset':<60}{head}   exp(s) exp(anon)")
    for name in names:
        cells, values = "", []
        for result in results:
            row = result["assets"].get(name)
            if row is None:
                cells += f"{'-':>35}"
                values.append(None)
                continue
            cells += f"{row['seconds']:12.1f} {row['rss'] / GIB:8.2f} {row['anon'] / GIB:8.2f}"
            values.append(row)
        exponents = ""
        if len(results) >= 2 and values[-1] and values[-2]:
            a, b = values[-2], values[-1]
            exponents = (
                f"   {_exponent(a['seconds'], b['seconds'], sizes[-2], sizes[-1])}"
                f"  {_exponent(a['anon'], b['anon'], sizes[-2], sizes[-1])}"
            )
        print(f"{name:<60}{cells}{exponents}")
    print()
    for r in results:
        assets = r["assets"]
        embed_s = sum(
            assets.get(k, {}).get("seconds", 0.0) for k in (FIRST_PARTITION, OTHER_PARTITIONS)
        )
        index = r["index"]
        print(
            f"N={r['images']:,}: whole graph {r['wall_s'] / 60:.1f} min wall, peak RSS of one "
            f"process {r['peak_rss'] / GIB:.2f} GiB, anon over the tree {r['peak_anon'] / GIB:.2f}"
            f" GiB; catalogue {r['images'] / assets['image_catalog']['seconds']:,.0f} files/s; "
            f"embedding {r['images'] / embed_s:,.0f} images/s at {r['image_size']} px; index "
            f"{index['type']} built in {index.get('build_seconds', float('nan')):.2f} s, "
            f"recall@10 {index['recall_at_10']:.3f}; service ready in "
            f"{r['service_ready_s']:.1f} s, RssAnon {r['service_mib']['RssAnon']:.0f} MiB "
            f"(VmRSS {r['service_mib']['VmRSS']:.0f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--work-dir", type=Path, default=REPOSITORY / "benchmarks/results/scale")
    parser.add_argument("--image-size", type=int, default=64, help="backbone input (pixels)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="generator processes")
    parser.add_argument("--table", action="store_true", help="only print the saved sizes")
    args = parser.parse_args()
    if not args.table:
        for images in args.sizes:
            result = measure(
                args.work_dir / str(images), images, args.image_size, args.seed, args.workers
            )
            print(f"N={images:,}: {result['wall_s']:.0f} s", flush=True)
    saved = [json.loads(p.read_text()) for p in sorted(args.work_dir.glob("*/result.json"))]
    print_table(saved)


if __name__ == "__main__":
    main()
