"""Memory of the head's training alone, in a fresh process, on data roots bench_scale.py left.

`geotriplet materialize` runs every Dagster run in one process, so the memory bench_scale.py
sees during training includes what the catalogue and embedding runs left allocated (the C
allocator seldom hands freed memory back); a deployment runs each run in its own process.
This trains the head (the projection_head asset's code: the data root's artefacts, the
config's parameters, checkpoints in a scratch folder) in a new process per data root and
samples that process: peak VmRSS, peak RssAnon, and RssAnon once the data is loaded (before
the first step), then the growth per image between the sizes.

    .venv/bin/python benchmarks/bench_training_memory.py [--work-dir benchmarks/results/scale]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from process_memory import TreeSampler

REPOSITORY = Path(__file__).resolve().parent.parent
GIB = 1 << 30

CHILD = """
import json, sys, time
from pathlib import Path
from geotriplet_assets.config import load_config
from geotriplet_assets.defs.training import head_params, training_data_for
from geotriplet_assets.paths import ArtefactLayout
from geotriplet_assets.stage_settings import settings_from_config
from geotriplet_assets.training.trainer import train_projection_head

config = load_config(Path(sys.argv[1]))
layout = ArtefactLayout(config.data_root)
data = training_data_for(config, layout)
loaded = time.time()
params, _ = head_params(config, layout)
settings = settings_from_config(config, layout.root)
result = train_projection_head(data, params, settings, Path(sys.argv[2]), resume=False)
print(json.dumps({"loaded_at": loaded, "images": int(sum(len(data.split(s).image_ids)
      for s in ("train", "val", "test")))}))
"""


def measure(root: Path) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.time()
        process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root / "config.yaml"), scratch],
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        with TreeSampler(process.pid) as sampler:
            out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"training on {root} exited {process.returncode}")
    info = json.loads(out.strip().splitlines()[-1])
    whole = sampler.peak()
    loading = sampler.peak(started, info["loaded_at"])
    return {
        "images": info["images"],
        "seconds": time.time() - started,
        "rss": whole["max_rss"],
        "anon": whole["max_anon"],
        "anon_loaded": loading["max_anon"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=REPOSITORY / "benchmarks/results/scale")
    args = parser.parse_args()
    roots = sorted(
        (p.parent for p in args.work_dir.glob("*/result.json")), key=lambda p: int(p.name)
    )
    results = []
    for root in roots:
        result = measure(root)
        results.append(result)
        print(
            f"{result['images']:>9,} images: {result['seconds']:6.0f} s, peak VmRSS "
            f"{result['rss'] / GIB:5.2f} GiB, peak RssAnon {result['anon'] / GIB:5.2f} GiB "
            f"(data loaded: {result['anon_loaded'] / GIB:5.2f} GiB)",
            flush=True,
        )
    for small, large in itertools.pairwise(results):
        grown = (large["anon"] - small["anon"]) / (large["images"] - small["images"])
        print(
            f"{small['images']:,} -> {large['images']:,}: peak RssAnon grows "
            f"{grown / 1024:.2f} KiB an image; at 25 M: "
            f"{(large['anon'] + grown * (25_000_000 - large['images'])) / GIB:.1f} GiB"
        )


if __name__ == "__main__":
    main()
