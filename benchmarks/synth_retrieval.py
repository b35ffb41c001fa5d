"""Synthetic city quality and speed: retrieval with pretrained vs random backbone weights.

Generates the demo city (or a chosen size) into a temporary folder, then measures in one run:
  generation  seconds and images/s with --workers processes, against 1 process on city 1;
  retrieval   leave-one-out recall@1/@5 and mAP@R of tf_efficientnet_lite0 embeddings at
              224 px, (a) with the packaged ImageNet weights and (b) randomly initialised
              (seed 0). Queries are images of multi-view targets; single-view distractors
              stay in the gallery. A hit is a top-ranked image of the same (DatasetID, TargetID).
Targets: pretrained recall@1 in [0.40, 0.75]; random recall@1 < 0.5 x pretrained.

    .venv/bin/python benchmarks/synth_retrieval.py [--preset demo|tiny] [--targets-per-city N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from geotriplet_assets.catalogue.metadata import read_metadata_file
from geotriplet_assets.evaluation.retrieval_metrics import RetrievalMetrics, evaluate_retrieval
from geotriplet_assets.synth import SynthConfig, generate_city

MODEL = "tf_efficientnet_lite0"
PRETRAINED_RANGE = (0.40, 0.75)
RANDOM_MAX_FRACTION = 0.5
DEFAULT_CACHE = Path(__file__).resolve().parent / "results" / "onnx-cache"
TARGET_ID_SPAN = 10_000_000


def build_config(args: argparse.Namespace) -> SynthConfig:
    config = SynthConfig.demo() if args.preset == "demo" else SynthConfig.tiny()
    overrides = {
        name: value
        for name in ("seed", "cities", "targets_per_city", "distractors_per_city")
        if (value := getattr(args, name)) is not None
    }
    return replace(config, **overrides)


def timed_generation(out: Path, config: SynthConfig, workers: int) -> tuple[int, float]:
    summary = generate_city(out, config, workers=workers)
    return summary.images, summary.seconds


def catalogue(root: Path) -> tuple[list[Path], np.ndarray, np.ndarray, np.ndarray]:
    """Image paths with integer labels (DatasetID, TargetID) and target lat/lon."""
    paths = sorted(root.glob("*/*.jpg"))
    metas = [read_metadata_file(p.with_suffix(".txt")) for p in paths]
    labels = np.array([m.dataset_id * TARGET_ID_SPAN + m.target_id for m in metas])
    lat = np.array([m.lat for m in metas])
    lon = np.array([m.lon for m in metas])
    return paths, labels, lat, lon


def retrieval(
    weights: str,
    paths: list[Path],
    labels: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    cache_dir: Path,
) -> tuple[RetrievalMetrics, float]:
    # Imported here so the generator's spawned workers, which re-import this script, stay light.
    from geotriplet_assets.features.backbone import BackboneSpec
    from geotriplet_assets.features.embedder import Embedder

    spec = BackboneSpec(model_name=MODEL, weights=weights, image_size=224, seed=0)
    embedder = Embedder.create(spec, cache_dir=cache_dir, num_workers=1)
    run = embedder.embed_paths(paths, [p.stem for p in paths])
    if len(run.rejections):
        raise RuntimeError(
            f"{len(run.rejections)} synthetic images were rejected:\n{run.rejections}"
        )
    return evaluate_retrieval(run.embeddings, labels, lat, lon, ks=(1, 5)), run.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=("demo", "tiny"), default="demo")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--cities", type=int)
    parser.add_argument("--targets-per-city", dest="targets_per_city", type=int)
    parser.add_argument("--distractors-per-city", dest="distractors_per_city", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()
    config = build_config(args)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        baseline_images, baseline_s = timed_generation(
            root / "baseline", replace(config, cities=1), workers=1
        )
        images, seconds = timed_generation(root / "city", config, workers=args.workers)
        print(f"config: {config}")
        print(
            f"generation: {images} images in {seconds:.1f} s with {args.workers} workers "
            f"({images / seconds:.1f} images/s); 1 worker on city 1: "
            f"{baseline_images / baseline_s:.1f} images/s; speed-up "
            f"{(images / seconds) / (baseline_images / baseline_s):.2f}x"
        )
        paths, labels, lat, lon = catalogue(root / "city")
        started = time.perf_counter()
        results = {
            weights: retrieval(weights, paths, labels, lat, lon, args.cache_dir)
            for weights in ("package", "random")
        }
        print(f"embedding + evaluation: {time.perf_counter() - started:.1f} s")

    header = ("weights", "recall@1", "recall@5", "mAP@R", "median m", "queries")
    print(f"{header[0]:<10}" + "".join(f"{h:>10}" for h in header[1:]))
    for weights, (metrics, _) in results.items():
        print(
            f"{weights:<10}{metrics.recall_at[1]:>10.3f}{metrics.recall_at[5]:>10.3f}"
            f"{metrics.map_at_r:>10.3f}{metrics.median_error_m:>10.1f}{metrics.queries:>10d}"
        )
    pretrained = results["package"][0].recall_at[1]
    random = results["random"][0].recall_at[1]
    ratio = random / pretrained if pretrained > 0 else float("nan")
    low, high = PRETRAINED_RANGE
    print(
        f"pretrained recall@1 = {pretrained:.3f} (target {low:.2f}-{high:.2f}): "
        f"{'ok' if low <= pretrained <= high else 'OUT OF RANGE'}"
    )
    print(
        f"random / pretrained recall@1 = {ratio:.3f} (target < {RANDOM_MAX_FRACTION}): "
        f"{'ok' if ratio < RANDOM_MAX_FRACTION else 'TOO HIGH'}"
    )


if __name__ == "__main__":
    main()
