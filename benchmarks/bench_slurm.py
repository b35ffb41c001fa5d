"""The demo graph with its heavy steps as SLURM jobs against the same graph computed locally, on
the same machine in the same run: the cost of a job (submission, queueing, a fresh process that
imports the stack and loads the backbone, Pipes, polling).

Runs inside the pipeline container of the compose stack with its SLURM cluster, where `sbatch`
works and the demo city is on the data volume:

    docker compose build && docker compose --profile slurm build
    docker compose --profile slurm up -d
    docker compose exec -T pipeline python - [--rounds 1] < benchmarks/bench_slurm.py

Each round materialises the demo config's settings over the city on the volume
(`input_dir: /data/demo_city`, `geotriplet materialize`) into a fresh data
root under /data/bench-slurm, once with compute.mode local and once with slurm (the embeddings
of the eight DatasetIDs as parallel jobs on the two nodes, the head as a job); the backbone's
ONNX export is made once beforehand so that neither pays it. It prints each stage's seconds,
the ratio slurm / local, and from sacct the jobs' submission-to-start latency and nodes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path

BENCH_ROOT = Path("/data/bench-slurm")
RUN_LINE = re.compile(r"run [0-9a-f]{8} (?P<label>.+): (?P<seconds>[0-9.]+) s$")
WARM = """
import os
from pathlib import Path
from geotriplet_assets.config import load_config
from geotriplet_assets.features.embedder import Embedder
from geotriplet_assets.stage_settings import backbone_spec
Embedder.create(backbone_spec(load_config()), cache_dir=Path(os.environ["GEOTRIPLET_CACHE_DIR"]))
"""


def _config(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "data: {root: data, input_dir: /data/demo_city}\n"
        "model: {backbone: tf_efficientnet_lite0, backbone_weights: package}\n"
        "neighbours: {k: 50}\n"
    )
    return path


def _materialise(config: Path, mode: str, root: Path) -> tuple[float, dict[str, float]]:
    shutil.rmtree(root, ignore_errors=True)
    environment = {
        **{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"},
        "GEOTRIPLET_CONFIG": str(config),
        "GEOTRIPLET_DATA_ROOT": str(root),
        "GEOTRIPLET_COMPUTE_MODE": mode,
    }
    started = time.monotonic()
    completed = subprocess.run(
        ["geotriplet", "materialize"], env=environment, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        raise SystemExit(f"{mode}: materialize failed\n{completed.stdout}\n{completed.stderr}")
    if "run " not in completed.stdout + completed.stderr:
        raise SystemExit(f"{mode}: no run summary in materialize's output")
    runs: dict[str, float] = {}
    # the summary goes to the console's stream, whichever it is
    for line in (completed.stdout + completed.stderr).splitlines():
        match = RUN_LINE.search(line.strip())
        if match:
            runs[match["label"]] = float(match["seconds"])
    return seconds, runs


def _stages(runs: dict[str, float], total: float) -> dict[str, float]:
    catalogue = runs.get("image catalogue", 0.0)
    downstream = runs.get("geography, training and serving", 0.0)
    return {
        "catalogue": catalogue,
        "embeddings (8 partitions)": total - catalogue - downstream,
        "geography, training, serving": downstream,
        "whole graph": total,
    }


def _jobs_since(started: datetime) -> list[dict[str, str]]:
    text = subprocess.run(
        [
            "sacct",
            "-X",
            "-n",
            "-P",
            "-S",
            started.strftime("%Y-%m-%dT%H:%M:%S"),
            "-o",
            "JobName,State,NodeList,Submit,Start,End",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    keys = ("name", "state", "node", "submit", "start", "end")
    return [dict(zip(keys, line.split("|"), strict=True)) for line in text.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    config = _config(BENCH_ROOT / "config.yaml")
    subprocess.run(
        ["python", "-c", WARM], env={**os.environ, "GEOTRIPLET_CONFIG": str(config)}, check=True
    )
    results: dict[str, list[dict[str, float]]] = {"local": [], "slurm": []}
    latencies: list[float] = []
    nodes: set[str] = set()
    for round_number in range(args.rounds):
        for mode in ("local", "slurm"):
            since = datetime.now().replace(microsecond=0)
            total, runs = _materialise(config, mode, BENCH_ROOT / f"{mode}-{round_number}")
            results[mode].append(_stages(runs, total))
            print(f"round {round_number + 1} {mode}: {total:.1f} s", flush=True)
            if mode == "slurm":
                for job in _jobs_since(since):
                    submitted, started = (
                        datetime.fromisoformat(job[k]) for k in ("submit", "start")
                    )
                    latencies.append((started - submitted).total_seconds())
                    nodes.add(job["node"])
    shutil.rmtree(BENCH_ROOT, ignore_errors=True)
    print(f"\n{'stage':<32}{'local s':>10}{'slurm s':>10}{'slurm/local':>13}")
    for stage in results["local"][0]:
        local = statistics.median(r[stage] for r in results["local"])
        slurm = statistics.median(r[stage] for r in results["slurm"])
        print(f"{stage:<32}{local:>10.1f}{slurm:>10.1f}{slurm / local:>12.2f}x")
    print(
        f"\n{len(latencies)} SLURM jobs on {', '.join(sorted(nodes))}: submission to start "
        f"min {min(latencies):.0f} s, median {statistics.median(latencies):.0f} s, "
        f"max {max(latencies):.0f} s "
        "(sacct's one-second resolution)"
    )


if __name__ == "__main__":
    main()
