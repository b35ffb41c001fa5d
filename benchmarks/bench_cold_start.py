"""The embedding stage's cold start: loading the backbone with and without its ONNX export
already in the cache.

Each measurement is a fresh Python process (as a new run or a new SLURM job is) that builds
the embedder the way `backbone_embeddings` does and embeds one batch; it reports the seconds
from the start of `Embedder.create` to the first batch's features. Cold: an empty cache
folder (a new data root before the cache was shared, or a new machine); warm: the same
folder again (any later data root on this machine, since the cache is keyed by model,
weights and preprocessing, not by data root). Rounds interleave cold and warm.

    .venv/bin/python benchmarks/bench_cold_start.py [--rounds 2] [--image-size 224]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np
from geotriplet_assets.config import parse_config
from geotriplet_assets.features.embedder import Embedder
from geotriplet_assets.stage_settings import backbone_spec
from geotriplet_assets.features.pixel_input import pixel_batch_shape

config = parse_config(sys.argv[2])
started = time.perf_counter()
embedder = Embedder.create(backbone_spec(config), cache_dir=Path(sys.argv[1]), num_workers=0)
loaded = time.perf_counter()
pixels = np.zeros(pixel_batch_shape(embedder.preprocessing, 8), dtype=np.uint8)
embedder.embed_batch(pixels)
done = time.perf_counter()
print(json.dumps({"load_s": loaded - started, "first_batch_s": done - started}))
"""


def measure(cache: Path, config: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(cache), config],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=None, help="null: the model's own")
    args = parser.parse_args()
    size = "null" if args.image_size is None else str(args.image_size)
    config = f"data: {{image_size: {size}}}\nmodel: {{backbone: tf_efficientnet_lite0}}"
    label = "its own input size" if args.image_size is None else f"{args.image_size} px"
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            cache = Path(scratch) / f"cache-{round_}"
            cold.append(measure(cache, config)["first_batch_s"])
            warm.append(measure(cache, config)["first_batch_s"])
            print(f"round {round_ + 1}: cold {cold[-1]:.1f} s, warm {warm[-1]:.1f} s", flush=True)
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(
        f"tf_efficientnet_lite0 at {label}, create to first batch (median of {args.rounds}): "
        f"cold (empty cache) {cold_s:.1f} s, warm (shared cache) {warm_s:.1f} s; "
        f"ratio cold/warm {cold_s / warm_s:.1f}x; saved per new data root {cold_s - warm_s:.1f} s"
    )


if __name__ == "__main__":
    main()
