#!/usr/bin/env bash
# The GPU paths, checked in one run: the demo city embedded on a CUDA device (PyTorch, mixed
# precision) and the head trained there (`train.precision: 16-mixed`), against the CPU path
# (ONNX Runtime, 32-bit training) on the same machine, each on a fresh data root.
#
#   make setup && bash benchmarks/gpu_check.sh [WORKDIR]     (default: a temporary folder)
#
# Prints, for each device: embedding images/s (the eight partition runs), seconds to the best
# validation epoch, test recall@1, and the whole materialisation; then the GPU/CPU ratios.
# Exits non-zero if CUDA is not available or either run fails.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${VENV:-.venv}/bin/python"
geotriplet="${VENV:-.venv}/bin/geotriplet"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"

"$python" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch sees no CUDA device")
print(f"CUDA: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
EOF

# one demo city, copied into both data roots so both runs embed the same photos
printf 'data: {root: %s/city}\n' "$work" >"$work/city.yaml"
"$geotriplet" --config "$work/city.yaml" synth >/dev/null

run() {  # run NAME DEVICE: materialise on a fresh root; the log is $work/NAME.log
    local name=$1 device=$2 root="$work/$1"
    rm -rf "$root" && mkdir -p "$root" && cp -r "$work/city/demo_city" "$root/"
    cat >"$work/$name.yaml" <<YAML
data: {root: $root}
embedding: {device: $device, engine: auto}
train: {precision: 16-mixed}
YAML
    local visible=()
    [[ $device == cpu ]] && visible=(env CUDA_VISIBLE_DEVICES=)
    local started=$SECONDS
    "${visible[@]}" "$geotriplet" --config "$work/$name.yaml" materialize >"$work/$name.log" 2>&1
    echo "$((SECONDS - started))" >"$work/$name.seconds"
}

run cpu cpu
run gpu cuda

"$python" - "$work" <<'EOF'
import re
import sys
from pathlib import Path

work = Path(sys.argv[1])
images = len(list((work / "city" / "demo_city").rglob("*.jpg")))
figures = {}
for name in ("cpu", "gpu"):
    log = (work / f"{name}.log").read_text()
    embed_s = sum(float(s) for s in re.findall(r"embeddings \d+ \(\d+/\d+\): ([\d.]+) s", log))
    head = re.search(r"test recall@1 ([\d.]+) .*best epoch (\d+) after ([\d.]+) s", log)
    if not embed_s or head is None:
        sys.exit(f"gpu_check: the {name} run printed no figures; see {work / (name + '.log')}")
    figures[name] = {
        "images/s": images / embed_s,
        "seconds to best": float(head.group(3)),
        "recall@1": float(head.group(1)),
        "total s": float((work / f"{name}.seconds").read_text()),
    }
print(f"{images} images; logs in {work}")
print(f"{'':8}{'embed images/s':>16}{'s to best epoch':>17}{'test recall@1':>15}{'total s':>9}")
for name, f in figures.items():
    print(
        f"{name:8}{f['images/s']:16.1f}{f['seconds to best']:17.1f}{f['recall@1']:15.3f}"
        f"{f['total s']:9.0f}"
    )
cpu, gpu = figures["cpu"], figures["gpu"]
print(
    f"GPU/CPU: embedding {gpu['images/s'] / cpu['images/s']:.2f}x, time to best epoch "
    f"{cpu['seconds to best'] / max(gpu['seconds to best'], 1e-9):.2f}x faster, whole "
    f"materialisation {cpu['total s'] / max(gpu['total s'], 1e-9):.2f}x faster"
)
EOF
