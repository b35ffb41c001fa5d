"""Benchmark evaluate_retrieval against pytorch-metric-learning's AccuracyCalculator.

Usage: python benchmarks/bench_retrieval_metrics.py [--images 10000] [--dim 128]
       [--large-images 20000] [--budget-mib 64]

The baseline (pml, exact cosine k-NN in torch) runs on the same embeddings in the same
process; both must agree on recall@1 (pml precision_at_1) and mAP@R. The large run
happens in a child process and measures its peak allocation with tracemalloc.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from geotriplet_assets.evaluation.retrieval_metrics import evaluate_retrieval


def synthetic_set(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """About 4 images per target, noisy enough that recall@1 is far from 1."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, max(1, n // 4), n)
    centres = rng.normal(size=(labels.max() + 1, dim))
    embeddings = (centres[labels] + rng.normal(scale=1.3, size=(n, dim))).astype(np.float32)
    lat = rng.uniform(-60, 60, n)
    lon = rng.uniform(-180, 180, n)
    return embeddings, labels, lat, lon


def large_run(n: int, dim: int, budget_mib: int) -> None:
    embeddings, labels, lat, lon = synthetic_set(n, dim, seed=1)
    tracemalloc.start()  # numpy reports its buffers to tracemalloc
    start = time.perf_counter()
    metrics = evaluate_retrieval(
        embeddings, labels, lat, lon, memory_budget_bytes=budget_mib << 20
    )
    seconds = time.perf_counter() - start
    peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
    print(
        f"evaluate_retrieval {n} x {dim}, budget {budget_mib} MiB: {seconds:.1f} s, "
        f"peak allocation during the call {peak_mib:.0f} MiB "
        f"(inputs {embeddings.nbytes / 2**20:.0f} MiB), recall@1 {metrics.recall_at[1]:.4f}",
        flush=True,
    )


def comparison_run(n: int, dim: int) -> None:
    import torch
    from pytorch_metric_learning.distances import CosineSimilarity
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    embeddings, labels, lat, lon = synthetic_set(n, dim)
    calculator = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
        knn_func=CustomKNN(CosineSimilarity()),
    )
    evaluate_retrieval(embeddings[:500], labels[:500], lat[:500], lon[:500])  # warm up
    calculator.get_accuracy(embeddings[:500], labels[:500])
    start = time.perf_counter()
    ours = evaluate_retrieval(embeddings, labels, lat, lon)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = calculator.get_accuracy(embeddings, labels)
    theirs_s = time.perf_counter() - start
    agree = abs(ours.recall_at[1] - theirs["precision_at_1"]) < 1e-9 and (
        abs(ours.map_at_r - theirs["mean_average_precision_at_r"]) < 1e-9
    )
    print(
        f"{n} x {dim}: evaluate_retrieval {ours_s:.2f} s (recall@1/5/10/20, mAP@R, errors); "
        f"pml AccuracyCalculator {theirs_s:.2f} s (precision@1, mAP@R)"
    )
    print(f"ratio pml/ours: {theirs_s / ours_s:.1f}x, same recall@1 and mAP@R: {agree}")
    assert agree, f"disagreement: {ours} vs {theirs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--large-images", type=int, default=20_000)
    parser.add_argument("--budget-mib", type=int, default=64)
    parser.add_argument("--large-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_only:
        large_run(args.large_images, args.dim, args.budget_mib)
        return
    comparison_run(args.images, args.dim)
    if args.large_images:
        child = [sys.executable, __file__, "--large-only", f"--dim={args.dim}"]
        child += [f"--large-images={args.large_images}", f"--budget-mib={args.budget_mib}"]
        subprocess.run(child, check=True)


if __name__ == "__main__":
    main()
